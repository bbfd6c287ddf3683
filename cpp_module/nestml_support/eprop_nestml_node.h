/*
 *  eprop_nestml_node.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_NESTML_NODE_H
#define NESTGRAD_EPROP_NESTML_NODE_H

#include <string>
#include <vector>

// NEST public headers
#include "eprop_archiving_node_impl.h"
#include "eprop_archiving_node_recurrent.h"
#include "eprop_archiving_node_recurrent_impl.h"
#include "eprop_synapse.h"
#include "event.h"
#include "nest_time.h"

#include "eprop_event_node.h"
#include "eprop_parameter_checks.h"
#include "event_product_history.h"

namespace nestgrad
{

/**
 * What an eprop_vector_synapse keeps for its target between two presynaptic spikes: the eligibility vector (the
 * sensitivity of the target's state to the weight; components are the model's eligibility states), its filtered
 * traces, and NEST's bookkeeping of windows split by flush events.
 */
struct EpropVectorTrace
{
  static constexpr int max_size = 6;  //!< eligibility states a target may have
  double z_previous_buffer = 0.0;
  double eps[ max_size ] = { 0.0, 0.0, 0.0, 0.0, 0.0, 0.0 };
  double e_bar = 0.0;
  double e_bar_reg = 0.0;
  double gradient = 0.0;  //!< gradient of the current window (summed over flush-event pieces)
  long remaining_steps_until_cutoff = 0;
  long decay_steps = 0;
};

/**
 * The eligibility recursion of one spike receptor port, as the generator derives it (y = J eps + b z,
 * e = psi c . y, eps = y + K e), for eprop_event_synapse (docs/event_driven_eprop.md). Two cases:
 *
 * - constant coefficients (K = 0) and one or two states with a triangular J: between presynaptic spikes the trace
 *   c . eps is a sum of geometric sequences with J's eigenvalues; the neuron's running sums live in the thread's
 *   EventHistoryStore (as for eprop_iaf_psc_exp);
 * - otherwise (spike-triggered increments: adaptation; a Jordan block; models whose map changes otherwise, as
 *   GLIF3's; up to five states per port): the neuron keeps running products of the step maps (EventProductHistory).
 *
 * The generated neuron fills n, J, b, c and K; the neuron derives the rest.
 */
struct EventPortRecursion
{
  static constexpr int max_states = EventProductHistory::max_states;
  int n = 0;  //!< states
  //! the map of a step without spike (NESTML: the propagators; beyond the cutoff eps decays with it)
  double J[ max_states ][ max_states ] = {};
  double b[ max_states ] = {};
  double c[ max_states ] = {};
  double K[ max_states ] = {};
  bool time_varying = false;  //!< running products even if K = 0 (the model's step map changes otherwise)
  // derived once per run: c^T J and c . b (the eligibility trace of a step: e = psi (c^T J s + c . b z))
  double cJ[ max_states ] = {};
  double cb = 0.0;
  // constant coefficients: J = P diag(lambda) P^-1; g = c^T P, w = P^-1 b
  double lambda[ 2 ] = {};
  double P[ 2 ][ 2 ] = {};
  double P_inv[ 2 ][ 2 ] = {};
  double g[ 2 ] = {};
  double w[ 2 ] = {};
  int slot[ 2 ] = {};  //!< slot of the running sums of lambda[m]
};

/**
 * Base class of the e-prop neurons generated from NESTML (nestml_models/eprop/, docs/nestml_eprop.md).
 *
 * NESTML generates the neuron's dynamics (its update and onCondition blocks, exact propagators); nestgrad's
 * generator adds the per-step e-prop bookkeeping and the eligibility traces it derives from the model's
 * equations. This class holds what is the same for every such neuron: the e-prop parameters of NEST's built-in
 * e-prop neurons (EpropParameters: same names, units and defaults), the spike and surrogate gradient of each step,
 * and the running products of models with time-varying eligibility coefficients. The learning-signal input, the
 * history that NEST's eprop_synapse reads and flush events are EpropEventNode's, shared with eprop_iaf_psc_exp.
 */
class EpropNestmlNode : public EpropEventNode
{
public:
  EpropNestmlNode();
  EpropNestmlNode( const EpropNestmlNode& ) = default;

  using nest::Node::handle;
  using nest::Node::handles_test_event;
  using EpropEventNode::handle;  // learning signals
  using EpropEventNode::handles_test_event;

  /**
   * Gradient of one eprop_vector_synapse over the window from its previous presynaptic spike to this one (steps),
   * for a spike that enters through receptor port rport; the same computation as compute_gradient() for NEST's
   * eprop_synapse, on an eligibility vector of eligibility_size() components. Adds to trace.gradient (the synapse
   * applies its optimizer).
   */
  virtual void compute_gradient_vector( long t_spike,
    long t_spike_previous,
    size_t rport,
    EpropVectorTrace& trace,
    bool is_flush_event,
    bool previous_was_flush_event ) = 0;

  //! Number of eligibility states (derived by the generator).
  virtual int eligibility_size() const = 0;

  /**
   * eprop_event_synapse: the gradient of a window from the running sums (constant eligibility coefficients) or the
   * running products (see EventPortRecursion); the same numbers as compute_gradient_vector().
   */
  double event_gradient( long t_spike,
    long t_spike_previous,
    double weight,
    size_t rport,
    EventEpropTrace& trace ) override;
  std::string event_synapse_refusal() const override;
  void move_event_reader( long t_spike_previous, long t_spike, size_t rport ) override;

  /**
   * NEST's eprop_synapse keeps two eligibility components and no receptor port: models with more (or several
   * spike ports) refuse it at connection time and need eprop_vector_synapse.
   */
  virtual bool needs_vector_synapse() const = 0;

  //! Called by eprop_vector_synapse when it connects (NEST's eprop_synapse calls register_eprop_connection()).
  void
  register_vector_connection()
  {
    vector_registration_ = true;
    register_eprop_connection();
    vector_registration_ = false;
  }

  void register_eprop_connection() override;

  void get_status( Dictionary& ) const override;
  void set_status( const Dictionary& ) override;

  /**
   * Called by NESTML's emit_spike() (the generated code calls it on its parent class): marks the current step
   * as a spike step for the e-prop history (t_spike is the end of the step, as NEST stamps spikes).
   */
  void set_spiketime( const nest::Time& t_spike, double offset = 0.0 );

protected:
  //! Per-run initialisation (flush-event interval in steps); called from the generated pre_run_hook().
  void eprop_pre_run_hook_();

  /**
   * Per-run initialisation of the running sums for eprop_event_synapse, once the model's propagators are computed
   * (called at the end of the generated pre_run_hook()).
   */
  void eprop_event_pre_run_hook_();

  /**
   * The ports' eligibility coefficients (generated for models that support eprop_event_synapse); returns the number
   * of ports, 0 if the model does not support it.
   */
  virtual int
  eprop_event_ports_( std::vector< EventPortRecursion >& ) const
  {
    return 0;
  }

  /**
   * Running products (docs/event_driven_eprop.md): the map A (n x n, row-major) and output h of the eligibility
   * recursion of port `port` in step t (psi: its surrogate gradient), s = A s, e = h . s between presynaptic spikes.
   * Default: the NESTML convention, A = (I + psi K c^T) J, h = psi J^T c.
   */
  virtual void event_step_map_( size_t port, long t, double psi, double* A, double* h ) const;
  /**
   * How a presynaptic spike of weight 1 entering port `port` in a step with surrogate gradient psi changes the state
   * (B) and the step's eligibility trace (hz). Default: the NESTML convention, B = (I + psi K c^T) b, hz = psi c . b.
   */
  virtual void event_spike_input_( size_t port, double psi, double* B, double& hz ) const;
  //! The coefficients of port `port` (valid once eprop_event_synapse is configured).
  const EventPortRecursion&
  event_port_( const size_t port ) const
  {
    return event_ports_[ port ];
  }
  /**
   * Segment length of the running products, as a power of two (2 .. 32 steps). Long segments need fewer lookups per
   * window, short ones fewer steps summed one by one in windows inside the segment being filled. Default: the longest.
   */
  virtual int
  event_product_segment_shift_() const
  {
    return EventProductHistory::max_shift;
  }
  //! Index into the ports of a connection's rport (NESTML: 0-based already).
  virtual size_t
  event_port_index_( const size_t rport ) const
  {
    return rport;
  }

  /**
   * Why the generator found that the model cannot use eprop_event_synapse (empty if it can, and for models written
   * in C++ that say so themselves).
   */
  virtual std::string
  eprop_event_unsupported_() const
  {
    return "its eligibility recursion is not known to the running sums; use eprop_vector_synapse.";
  }

  /**
   * Surrogate gradient of this step from the generated threshold condition `v >= v_th` (both sides as the model
   * writes them, before the reset), zero if the rest of the condition forbids a spike (refractoriness).
   */
  double
  eprop_surrogate_gradient_( const bool can_spike, const double v, const double v_th )
  {
    spiked_ = false;
    return ( this->*compute_surrogate_gradient_ )(
      can_spike ? 0.0 : 1.0, v, v_th, eprop_.surrogate_gradient_height_, eprop_.surrogate_gradient_width_ );
  }

  /**
   * End of step t (the model's update and onCondition blocks have run): flush events, the history entry with
   * the surrogate gradient and the firing-rate regularisation. Returns the learning signal of the entry that is
   * complete now (as NEST's e-prop neurons record it).
   */
  double eprop_end_of_step_( long t, long lag, double surrogate_gradient );

  double
  eprop_kappa_() const
  {
    return eprop_.kappa_;
  }
  double
  eprop_kappa_reg_() const
  {
    return eprop_.kappa_reg_;
  }

  //! Running sums: the base class's store; running products: one per port.
  double append_event_step_( long t, double surrogate_gradient, double learning_signal ) override;
  void store_event_learning_signal_( long t, double learning_signal ) override;

private:
  EpropParameters eprop_;  //!< c_reg, f_target, kappa, kappa_reg, surrogate gradient
  bool spiked_;               //!< the model emitted a spike in the current step
  std::vector< EventPortRecursion > event_ports_;  //!< per receptor port, with eprop_event_synapse
  //! running products per port when the eligibility coefficients vary in time (empty otherwise)
  std::vector< EventProductHistory > event_products_;
  double event_reg_factor_ = 0.0;  //!< 1 - kappa_reg if the regularisation signal is added to the task filter's
  double event_product_gradient_( long t_spike, long t_spike_previous, size_t rport, EventEpropTrace& trace );
  void configure_event_products_();
  bool vector_registration_;  //!< an eprop_vector_synapse is connecting
};

inline void
EpropNestmlNode::set_spiketime( const nest::Time&, double )
{
  spiked_ = true;
}

}  // namespace nestgrad

// NESTML writes the parent class as nest::<name> and calls it as <name> from inside namespace nest.
namespace nest::nestgrad
{
using EpropNestmlNode = ::nestgrad::EpropNestmlNode;
}

#endif  // NESTGRAD_EPROP_NESTML_NODE_H
