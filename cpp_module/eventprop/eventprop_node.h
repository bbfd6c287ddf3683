/*
 *  eventprop_node.h
 *
 *  This file is part of nestgrad.
 *
 *  Base class of nestgrad's EventProp nodes: off-grid spiking, an inbox that keeps every arriving spike with its
 *  exact time (NEST's SliceRingBuffer merges simultaneous spikes and drops their order), and the trial schedule
 *  that maps NEST's absolute time onto trial-local time (docs/eventprop_nest_design.md). The spiking neurons' common
 *  part builds on it in eventprop_spiking_node.h.
 */

#ifndef NESTGRAD_EVENTPROP_NODE_H
#define NESTGRAD_EVENTPROP_NODE_H

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// NEST public headers
#include "dictionary.h"
#include "event.h"
#include "nest_time.h"
#include "nest_types.h"
#include "node.h"

namespace nestgrad
{

//! One spike that reached an EventProp node: delivery step (stamp + delay), offset, weight, arrival order.
struct EventpropArrival
{
  long delivery_step;  //!< NEST step at whose end the spike counts (emission stamp + delay)
  long stamp;          //!< emission stamp
  double offset;       //!< the event's offset field, verbatim
  double weight;
  long seq;  //!< order of arrival at this node (handle() calls)
  long rport;  //!< receiver port set by the synapse: 0, or EVENTPROP_EXCHANGE_PORT (eventprop_exchange_synapse)
};

//! Port on which eventprop_exchange_synapse delivers (the loss exchange between spiking outputs): it tells these
//! messages from spikes that an output's forward connections deliver in the same step.
constexpr long EVENTPROP_EXCHANGE_PORT = 1;

//! What a spike is, by the step (inside its trial's period) in which it was sent.
enum class EventpropPhase
{
  none,        //!< outside every window (dropped)
  forward,     //!< a spike of the forward pass (offset: its time)
  y_exchange,  //!< a readout's value y (or a spiking output's first spike time) sent to the other outputs
  c_message,   //!< a readout's loss coefficient and constants sent over reverse connections (offset: payload)
  backward,    //!< a replayed spike in the backward pass (offset: the spike's forward time)
  flush        //!< end of a spiking neuron's backward sweep (step n_B + n_T)
};

/**
 * Trials are laid out on NEST's time axis: trial k occupies [origin + k period, origin + k period + duration) in
 * absolute time (ms); trial-local time t runs from 0 to duration. origin and period are whole numbers of steps.
 *
 * With ``backward``, each period also holds the backward pass (docs/eventprop_nest_design.md): in steps i of the
 * period (step i covers trial-local ((i) h, (i + 1) h]), with n_T = ceil(T / h) and D = ceil(delay_bound / h):
 * forward spikes are sent in steps i < n_T; readouts send their value y in step n_T and their loss coefficient
 * (with their constants) in step n_c = n_T + D + 2; the backward pass runs in steps [n_B, n_B + n_T) with
 * n_B = n_c + D + 2, mirrored time s = T - t, s in ((i - n_B) h, (i - n_B + 1) h]; the period must be at least
 * n_B + n_T + D + 2 steps, so that every message of a trial arrives inside its period.
 */
struct EventpropSchedule
{
  double origin_ms = 1.0;
  double duration_ms = 100.0;
  double period_ms = 200.0;
  bool backward = false;
  double delay_bound_ms = 1.0;  //!< >= every delay of the network (backward pass only)
  long origin_steps = 0;        //!< set by calibrate()
  long period_steps = 0;
  long n_T = 0;
  long n_c = 0;
  long n_B = 0;
  double h = 0.1;

  //! The phase of a spike sent with this (absolute) stamp, and its trial.
  EventpropPhase
  phase_of_stamp( const long stamp, long& trial ) const
  {
    long within = 0;
    if ( not locate( stamp - 1, trial, within ) )
    {
      return EventpropPhase::none;
    }
    if ( within < n_T )
    {
      return EventpropPhase::forward;
    }
    if ( not backward )
    {
      return EventpropPhase::none;
    }
    if ( within == n_T )
    {
      return EventpropPhase::y_exchange;
    }
    if ( within == n_c )
    {
      return EventpropPhase::c_message;
    }
    if ( within >= n_B and within < n_B + n_T )
    {
      return EventpropPhase::backward;
    }
    if ( within == n_B + n_T )
    {
      return EventpropPhase::flush;
    }
    return EventpropPhase::none;
  }

  void get( Dictionary& d ) const;
  void set( const Dictionary& d );
  //! Convert to steps and check that origin and period lie on the grid (throws BadProperty naming the value).
  void calibrate( const std::string& model );

  /**
   * For the step covering absolute ((s) h, (s + 1) h]: the trial k and the step's index inside the period, or
   * false before the first trial.
   */
  bool
  locate( const long s, long& trial, long& within ) const
  {
    const long rel = s - origin_steps;
    if ( rel < 0 )
    {
      return false;
    }
    trial = rel / period_steps;
    within = rel % period_steps;
    return true;
  }
};

/**
 * Base class of the EventProp neurons, readouts, inputs and the probe node: off-grid sender and receiver of
 * SpikeEvents, which it keeps per delivery step in arrival order.
 */
class EventpropNode : public nest::Node
{
public:
  using nest::Node::handle;
  using nest::Node::handles_test_event;

  bool
  is_off_grid() const override
  {
    return true;
  }

  size_t send_test_event( nest::Node& target, size_t receptor_type, nest::synindex, bool ) override;
  size_t handles_test_event( nest::SpikeEvent&, size_t receptor_type ) override;
  void handle( nest::SpikeEvent& e ) override;

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

protected:
  //! an empty inbox
  void init_buffers_() override;
  //! the schedule in steps of the current resolution (EventpropSchedule::calibrate)
  void pre_run_hook() override;
  //! Spikes whose delivery step is `step`, sorted by trial-independent time key (offset descending = earlier
  //! first), ties in arrival order; removed from the inbox. The reference is valid until the next call.
  const std::vector< EventpropArrival >& take_arrivals_( long step );
  void clear_inbox_();
  //! At least min_delay + max_delay + 1 slots, arrivals kept in their steps' slots: pending arrivals are due within
  //! max_delay steps of the step taken next, so max_delay + 1 would do; min_delay is a margin
  void size_inbox_();
  //! The event's time in trial-local ms for a spike counted at the end of step `delivery_step` of trial `trial`.
  double
  local_time_( const EventpropArrival& a, const long trial ) const
  {
    const long rel = a.delivery_step - schedule_.origin_steps - trial * schedule_.period_steps;
    return rel * schedule_.h - a.offset;
  }
  //! Emit one off-grid spike in the step of `lag` with the given offset field.
  void send_spike_( long lag, double offset );
  /**
   * The update loop of the nodes that simulate trials (readouts and spiking neurons): for each step of [from, to)
   * inside a trial period, the spikes counted at the end of the step are taken from the inbox; at step 0 of the
   * period its trial becomes trial_ and start_trial_ runs; trial_step_ runs each step of trial_'s period (a node
   * created during a period waits for the next one). The spikes of other steps are dropped.
   */
  void update_trials_( nest::Time const& origin, long from, long to );
  //! the state at the start of trial_ (nodes that use update_trials_)
  virtual void
  start_trial_()
  {
  }
  //! step `within` of trial_'s period, which covers trial-local (within h, (within + 1) h], in the step of `lag`
  virtual void
  trial_step_( long /* lag */, long /* within */, const std::vector< EventpropArrival >& /* arrivals */ )
  {
  }

public:
  const EventpropSchedule&
  schedule() const
  {
    return schedule_;
  }

  /**
   * dL/dI of this node at trial-local forward time t of the trial in its backward pass (lambda_I, 1/pA), read by
   * eventprop_synapse for its weight gradient. Nodes without an adjoint throw.
   */
  virtual double adjoint_current_at( double t ) const;

  /**
   * Per-trial gradient clipping (Göltz et al.'s max_dw_norm): each incoming eventprop_synapse reports the magnitude
   * of its weight gradient of the trial when its source's backward sweep ends (the source's flush message), and the
   * node keeps the largest. If it exceeds max_trial_gradient, the gradients of all incoming weights of that trial
   * are dropped (a neuron that barely reaches threshold has a diverging dt/dw).
   */
  void
  note_trial_gradient( const long trial, const double g )
  {
    if ( trial != grad_trial_ )
    {
      grad_trial_ = trial;
      grad_max_ = 0.0;
    }
    grad_max_ = std::max( grad_max_, std::abs( g ) );
  }
  //! true if the incoming weight gradients of `trial` are dropped (only the last trial reported is kept)
  bool
  trial_gradient_dropped( const long trial ) const
  {
    return trial == grad_trial_ and grad_max_ > max_trial_gradient_;
  }

  /**
   * dL/dw of one arrival of weight w at trial-local forward time t on receptor port rport, per unit weight, in the
   * backward pass (1/pA): lambda_I(t) for nodes with one exponential synaptic current (adjoint_current_at), the
   * alpha-current port's lambda_x(t) e / tau_r for eventprop_glif3_psc_ps.
   */
  virtual double
  weight_gradient_at( const double t, const long ) const
  {
    return adjoint_current_at( t );
  }

  //! Refuse a forward (eventprop_synapse) connection on this receptor port (IllegalConnection); all accept 0.
  virtual void
  check_forward_port( const size_t ) const
  {
  }

protected:
  EventpropSchedule schedule_;
  long trial_ = -1;  //!< the trial being simulated (update_trials_), -1: none yet
  //! 1/pA; +inf: no clipping (nodes without the parameter never drop)
  double max_trial_gradient_ = std::numeric_limits< double >::infinity();

private:
  //! a ring of arrivals by delivery step modulo its size (a slot per step reused, not a map node and a vector per
  //! step: allocation took a third of the time of handle() and of the arrival loop)
  std::vector< std::vector< EventpropArrival > > inbox_;
  std::vector< EventpropArrival > arrivals_;  //!< the step's arrivals that take_arrivals_ handed out
  //! arrivals in the ring: with none, a step does not touch its slot (most steps of the backward pass and of the
  //! pauses, where the slots would be a cache miss per neuron and step)
  size_t pending_ = 0;
  long seq_ = 0;
  long grad_trial_ = -1;   //!< the trial whose incoming gradients were reported last
  double grad_max_ = 0.0;  //!< their largest magnitude (1/pA)
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_NODE_H
