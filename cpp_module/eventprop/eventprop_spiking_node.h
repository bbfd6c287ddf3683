/*
 *  eventprop_spiking_node.h
 *
 *  This file is part of nestgrad.
 *
 *  What nestgrad's spiking EventProp neurons (eventprop_iaf_psc_exp_ps, eventprop_glif3_psc_ps) share: the schedule
 *  of each step of a trial period (docs/eventprop_nest_design.md), the spikes of the current trial with what the
 *  adjoint needs of them, the sums of the spiking targets' adjoints pushed by reverse connections, the losses on
 *  spike times, the records and their status entries. A model adds its dynamics through the hooks below.
 */

#ifndef NESTGRAD_EVENTPROP_SPIKING_NODE_H
#define NESTGRAD_EVENTPROP_SPIKING_NODE_H

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "eventprop_node.h"

namespace nestgrad
{

//! What the adjoint needs of one spike of the current trial.
struct EventpropTrialSpike
{
  double t;             //!< trial-local time (ms)
  double gdot;          //!< dg/dt just before the spike, g = v - theta (- adaptation) (mV/ms)
  double vdot_plus;     //!< dv/dt just after it (0 while refractory)
  double release_t;     //!< release from refractoriness, < 0: none within the trial
  double release_vdot;  //!< free dv/dt at the release (NaN: none)
  double J;             //!< sum over the spike's arrivals at targets (pushed by reverse connections)
  double R;             //!< release term
  double G;             //!< dL/dt of the spike through losses on spike times (first-spike loss, spike count)
  long stamp_rel;       //!< the spike's stamp relative to the trial start
  double offset;        //!< its offset
};

/**
 * Sum over the spiking targets with equal constants (tau_m, tau_syn of the connection's port, C_m) of w (lambda_v,
 * lambda_x, lambda_I)(t + d), kept at time t (lambda_x: alpha-shaped currents only).
 */
struct EventpropAdjointGroup
{
  double tau_m;
  double tau_syn;
  double C_m;
  double t;
  double sv;
  double sx;
  double si;
};

//! A jump dv of a spiking target's lambda_v, to enter the sums when the backward sweep passes t.
struct EventpropAdjointPush
{
  double t;
  double dv;
  double tau_m;
  double tau_syn;
  double C_m;
};

/**
 * In the record of a backward sweep (entries with a member t in descending order), the entry that follows the
 * trial-local time t (the smallest entry time > t): the adjoint at t is one closed-form propagation from it.
 * nullptr for t at or after the end of the trial.
 */
template < typename Entry >
const Entry*
eventprop_entry_after( const std::vector< Entry >& entries, const double t )
{
  const auto it =
    std::partition_point( entries.begin(), entries.end(), [ t ]( const Entry& e ) { return e.t > t; } );
  return it == entries.begin() ? nullptr : &*( it - 1 );
}

/**
 * Base class of the spiking EventProp neurons. It runs each step of the period: the forward pass (arrivals, threshold
 * crossings and releases from refractoriness in the order of their exact times), in step n_T the exchange of the
 * outputs' first spike times, in step n_c the losses on spike times and the constants sent to the mirrors of the
 * reverse connections, the backward sweep in steps [n_B, n_B + n_T) and the flush message in step n_B + n_T.
 * eventprop_reverse_synapse sees a spiking neuron through its public part: the spikes of the current trial and the
 * sums J_k to which the reverse connections from its targets add.
 *
 * A model keeps its state and its adjoint and implements the hooks (protected): propagation, threshold crossing,
 * the jumps at its spikes, releases and arrivals, the adjoint at the end of the trial and its jumps in the backward
 * sweep, its constants for the mirrors, and the kind of spiking target it takes.
 */
class EventpropSpikingNode : public EventpropNode
{
public:
  //! spikes of the current trial
  size_t
  trial_spike_count() const
  {
    return tspk_.size();
  }
  //! trial-local time of spike k (ms)
  double
  trial_spike_time( const size_t k ) const
  {
    return tspk_[ k ].t;
  }
  //! the arrival time of spike k over a delay of d_steps exactly as the target computes it (ms)
  double
  trial_arrival_time( const size_t k, const long d_steps ) const
  {
    return ( tspk_[ k ].stamp_rel + d_steps ) * schedule_.h - tspk_[ k ].offset;
  }
  //! J_k += x (a readout target's term, pushed before the backward sweep)
  void
  add_to_jump_sum( const size_t k, const double x )
  {
    tspk_[ k ].J += x;
  }
  /**
   * A spiking target's lambda_v jumped (times the connection's weight: dv) at its event t_e; seen through a
   * connection of delay d it enters J of this neuron's spikes before t = t_e - d. Applied in the backward sweep
   * when it passes t, into the sum of the targets with these constants: tau_m, tau_syn (of the connection's port),
   * C_m of the target; alpha: the target's synaptic currents are alpha-shaped (GLIF3). A model takes one kind of
   * target (alpha_targets_) and refuses the other.
   */
  void add_adjoint_push( double t, double dv, double tau_m, double tau_syn, double C_m, bool alpha );
  //! the port on which eventprop_exchange_synapse delivers the other outputs' first spike times
  virtual long
  exchange_port() const
  {
    return EVENTPROP_EXCHANGE_PORT;
  }

  //! the schedule, the losses on spike times and the records (a model adds its parameters and state)
  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

protected:
  void update( nest::Time const& origin, long from, long to ) override;
  void start_trial_() override;
  //! the schedule of the period's steps (class comment)
  void trial_step_( long lag, long within, const std::vector< EventpropArrival >& arrivals ) override;

  // --- hooks of the model ------------------------------------------------------------------------------------------
  //! the state at the start of a trial (not refractory); clears the model's records of the trial
  virtual void reset_trial_state_() = 0;
  //! the state u > 0 ms later (frozen parts frozen while refractory_)
  virtual void propagate_state_( double u ) = 0;
  //! time from now to the first threshold crossing within horizon ms of free dynamics, < 0: none
  virtual double first_crossing_( double horizon ) const = 0;
  /**
   * True for a model whose crossing search is costly over long horizons (the Rolle split of a sum of many
   * exponentials): the forward pass then searches only crossing_lookahead_ms ahead of the current step and extends
   * the search step by step (first_crossing_between_) while no input arrives. The first crossing found is the same.
   */
  virtual bool
  searches_lazily_() const
  {
    return false;
  }
  /**
   * Time from now to the first crossing in (u0, u1] of free dynamics, given that there is none in [0, u0], < 0:
   * none. That premise makes the first crossing in [0, u1] the answer; a model may search from its state u0 later.
   */
  virtual double
  first_crossing_between_( double, double u1 ) const
  {
    return first_crossing_( u1 );
  }
  //! dg/dt of the current state (g: distance of v from the threshold)
  virtual double threshold_slope_() const = 0;
  //! dv/dt of the current state without refractoriness
  virtual double voltage_slope_() const = 0;
  //! the refractory period t_ref (ms)
  virtual double refractory_period_() const = 0;
  //! the jumps of the state at a spike (reset, adaptation, after-spike currents); the spike is tspk_.back()
  virtual void reset_at_spike_() = 0;
  //! at the release from refractoriness of tspk_.back() (release_vdot already set)
  virtual void
  note_release_()
  {
  }
  //! false for an arrival that is not a forward spike (it is skipped)
  virtual bool
  takes_arrival_( const EventpropArrival& ) const
  {
    return true;
  }
  //! the jump of the synaptic state at an arrival (the state is at its time)
  virtual void apply_arrival_( const EventpropArrival& a ) = 0;
  //! the constants after the first four of step n_c for the mirrors of the reverse connections from this neuron
  virtual void send_mirror_constants_( long lag ) = 0;
  //! tau_s of the first-spike loss when first_spike_tau_s is NaN (ms); NaN: the model needs the parameter
  virtual double default_first_spike_tau_s_() const = 0;
  //! the adjoint at the end of the trial, the first entry of the backward sweep's record
  virtual void start_adjoint_() = 0;
  /**
   * The adjoint at backward event t, from the last entry, and its jump: at the release of spike k (release) the
   * term R_k, then lambda_v = 0; at spike k (J_k complete) B and the jumps. Records the entry; returns lambda_v just
   * before the event in forward time.
   */
  virtual double adjoint_event_( double t, bool release, size_t k ) = 0;
  //! the kind of spiking target whose pushes this neuron takes: true alpha-shaped, false exponential currents
  virtual bool alpha_targets_() const = 0;

  // state of the current trial (trial_), trial-local times
  double t_upd_ = 0.0;
  bool refractory_ = false;
  double t_release_ = -1.0;         //!< release time of the current refractory period, < 0: none within the trial
  double t_cross_ = -1.0;           //!< predicted threshold crossing, < 0: none up to checked_to_
  double checked_to_ = 0.0;         //!< the crossing search covered free dynamics up to this time (at most T)
  bool refractory_at_end_ = false;  //!< refractory at the end of the forward pass
  std::vector< EventpropTrialSpike > tspk_;

private:
  void advance_( double t );
  //! the first crossing after t (the state has just changed at t), searched to the trial's end or, lazily, a little
  //! past b
  void predict_( double t, double b );
  //! the crossing search from checked_to_ (none before it) to the trial's end or, lazily, a little past b
  void search_crossing_( double b );
  void spike_( double t, long lag, long within );
  void release_( double t, double b );
  //! the forward pass in the step of `lag`, which ends at trial-local time b
  void forward_step_( const std::vector< EventpropArrival >& arrivals, long lag, long within, double b );
  void start_backward_();
  //! dL/dt of the trial's spikes from the first-spike loss and the spike-count regulariser (step n_c)
  void spike_time_loss_( long trial );
  void backward_step_( long lag, double s_end );

  //! the order of pushes_ (they are applied from the largest forward time down); ties by value, then by the
  //! constants (which decide the order of the sums in groups_), so that the order of arrival (which depends on
  //! threads and ranks) does not matter. NaN counts as larger than any number and equal to NaN: std::sort needs a
  //! strict weak order, which a NaN value (a diverged adjoint) would otherwise break. A function object, so that
  //! comparisons inline
  struct PushLaterFirst
  {
    static bool
    less_( const double a, const double b )
    {
      return std::isnan( b ) ? not std::isnan( a ) : a < b;
    }
    bool
    operator()( const EventpropAdjointPush& x, const EventpropAdjointPush& y ) const
    {
      const double xs[] = { x.t, x.dv, x.tau_syn, x.tau_m, x.C_m };
      const double ys[] = { y.t, y.dv, y.tau_syn, y.tau_m, y.C_m };
      for ( size_t i = 0; i < 5; ++i )
      {
        if ( less_( xs[ i ], ys[ i ] ) )
        {
          return true;
        }
        if ( less_( ys[ i ], xs[ i ] ) )
        {
          return false;
        }
      }
      return false;
    }
  };
  //! a sum of the targets' adjoints back to time t (their backward dynamics between their jumps)
  void propagate_group_to_( EventpropAdjointGroup& g, double t ) const;
  //! the sum's term of J_k at a spike
  double group_jump_term_( const EventpropAdjointGroup& g ) const;
  void apply_pushes_( double t );
  std::vector< EventpropAdjointGroup > groups_;
  //! pushes not yet applied, in the order of arrival: the delivery, which touches neurons at random, only appends;
  //! apply_pushes_ (at this neuron's events, its memory then in cache) sorts the ones it applies
  std::vector< EventpropAdjointPush > pushes_;

  //! backward events (time, 0 spike / 1 release, spike index) in sweep order, and the next one
  std::vector< std::tuple< double, int, size_t > > bevents_;
  size_t bnext_ = 0;

  // losses on spike times (docs/eventprop.md, "Losses"; reference losses.py FirstSpikeLoss, SpikeCountRegulariser)
  long output_index_ = -1;      //!< index among the outputs of a first-spike loss, -1: not an output
  std::vector< long > labels_;  //!< label of each trial (an output index)
  double fs_xi_ = 0.2;
  double fs_alpha_ = 0.005;
  double fs_beta_ = 1.0;
  double fs_tau_s_ = std::numeric_limits< double >::quiet_NaN();  //!< NaN: default_first_spike_tau_s_()
  double sc_rho_ = 0.0;                                            //!< spike-count regulariser strength, 0: off
  double sc_nu_ = 1.0;
  double t_first_sent_ = 0.0;          //!< first spike time sent in step n_T (T without a spike)
  std::vector< double > others_t_;     //!< the other outputs' first spike times of the current trial
  std::vector< double > t_first_rec_;  //!< per trial: first spike time (+inf without a spike); outputs only
  std::vector< double > score_rec_;    //!< per trial: s = sum_k (1 - t_k / T); with sc_rho_ > 0 only

  // record (all trials since the network was built; off with record = false, e.g. for long training runs)
  bool record_ = true;
  bool status_records_ = true;  //!< false: GetStatus leaves the (growing) records out
  long n_spikes_ = 0;           //!< forward spikes since the network was built (recorded or not)
  long n_spiking_trials_ = 0;   //!< trials with at least one spike since the network was built
  std::vector< long > rec_trial_;
  std::vector< double > rec_t_;
  std::vector< double > rec_gdot_;
  std::vector< double > rec_vdot_plus_;
  std::vector< double > rec_release_vdot_;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_SPIKING_NODE_H
