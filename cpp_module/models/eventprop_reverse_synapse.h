/*
 *  eventprop_reverse_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_REVERSE_SYNAPSE_H
#define NESTGRAD_EVENTPROP_REVERSE_SYNAPSE_H

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

// NEST public headers
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eventprop_glif3_math.h"
#include "eventprop_iaf_psc_exp_ps.h"
#include "eventprop_math.h"
#include "eventprop_readout_ps.h"
#include "eventprop_spiking_node.h"
#include "eventprop_synapse.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, EventProp

Short description
+++++++++++++++++

Reverse connection of EventProp: carries a target's adjoint back to the source of a forward connection

Description
+++++++++++

For a forward connection n -> m (``eventprop_synapse``, weight w, delay d) whose source n is a spiking EventProp
neuron (``eventprop_iaf_psc_exp_ps`` or ``eventprop_glif3_psc_ps``), the builder adds
``eventprop_reverse_synapse`` m -> n with the same weight and
delay (docs/eventprop_nest_design.md, Option B). It never passes a spike on to n. It is stored with n (on n's
thread and rank), so it adds to n's per-spike sums J_k directly; what crosses threads and ranks are m's spikes.

Readout sources (``eventprop_readout_ps`` with a cross-entropy loss on the mean, the exponentially weighted mean
or the maximum voltage): in step n_c of a trial's period the readout sends seven messages, in this order, in the
offset field: its loss coefficient c = dL/dy, the time t_max of its maximum (NaN for the means), the kink term
(c dv/dt just before t_max if the maximum sits on an arrival, else 0; for the means: the start t_w of the response
window, 0 for the whole trial), the weighting rate r (1 / tau_w for
``sum_exp``, 0 for ``sum``) and its tau_m, tau_syn and C_m. After the seventh the connection adds, for every spike
k of n in the trial whose arrival t_a = t_k + d lies before the end T of the trial,

.. math::

   J_k \mathrel{+}= w \left( \frac{\lambda_I(t_a)}{\tau_{syn}} - \frac{\lambda_v(t_a)}{C_m} \right)
   \; (+ \text{kink if } t_a = t_{max}), \quad
   \text{means: } \lambda_v(t) = \frac{c}{T} e^{-r t} \int_0^{T - t} e^{-(r + 1/\tau_m) u} du, \;
   \lambda_I(t) = \frac{c}{T C_m} e^{-r t} \int_0^{T - t} e^{-r u} \kappa(u) du; \quad
   \text{max: } \lambda_v(t) = c\, e^{-(t_{max} - t)/\tau_m}, \; \lambda_I(t) = \frac{c}{C_m} \kappa(t_{max} - t)
   \text{ for } t < t_{max}, \text{ else } 0

with the readout's constants, before n's backward sweep starts. With a response window [t_w, T] the means' forcing
is c/(T - t_w) exp(-r t) on the window only: the closed form above with T - t_w as the normaliser, evaluated at
max(t, t_w) and propagated back without forcing to t < t_w (``eventprop_readout_mean_adjoint``, shared with the
readout). Cost: O(spikes of n) per reverse connection and
trial, the reference's per-arrival cost.

GLIF3 sources (``eventprop_glif3_psc_ps``, alpha currents per receptor port): the source sends
(0, NaN, 0, 0, tau_m, -R, C_m, tau_1, ..., tau_R) in step n_c; ``forward_receptor`` (the forward connection's
``receptor_type`` r) selects tau_r. The mirror then follows the source's lambda_v and its port's (lambda_x, lambda_I)
with the source's formula (``eventprop_glif3_port_adjoint``), pushes the jumps of lambda_v (alpha groups of the
target) and computes the gradient lambda_x(t_k + d) e / tau_r; otherwise as for LIF sources below.

Spiking sources (``eventprop_iaf_psc_exp_ps``: recurrent and multi-layer networks): the source sends its constants
(0, NaN, 0, v, tau_m, tau_syn, C_m) in step n_c (v = -1: the source dropped the previous trial's incoming weight
gradients, see its ``max_trial_gradient``; the connection then drops its copy of that trial's gradient too), and
in the backward pass, at each of its spikes, the spike's forward time t_e and lambda_v just before it, at each
release from refractoriness the negative release time (lambda_v = 0 before it). The connection keeps a mirror of
the source's lambda_v, propagated with the source's formula between these events, and pushes each jump of
lambda_v, times w, into the target's accumulator for the targets with these constants, to be applied when the
target's backward sweep passes t_e - d (see eventprop_iaf_psc_exp_ps).
The connection also computes the forward connection's gradient dL/dw = sum_k lambda_I,source(t_k + d) over the
target's spikes k, from its mirror (lambda_I included, the source's formula and order) or, for a readout source,
from the closed form: the same doubles in the same order as ``eventprop_synapse``, so that both copies apply the
same optimizer step (common properties and ``gradient``, ``adam_m``, ``adam_v`` as for ``eventprop_synapse``; set
the same optimizer on both models; for weight bounds and Dale's law, copies of both models with the same bounds, see
``eventprop_synapse``). After its source's sweep (step n_B + n_T) the source sends one more message
(flush) for the arrivals before its first event. Cost: O(1) per message and per arrival, O(spikes x fan-in) in
all.

Parameters
++++++++++

===================== ======= =========== ===========================================================================
``weight``            pA      1.0         copy of the forward connection's weight
``delay``             ms      1.0         the forward connection's delay
``gradient``          1/pA    0.0         the forward connection's dL/dw, computed again (equal to it bit for bit)
``forward_receptor``          0           the forward connection's receptor_type (its port at a GLIF3 source),
                                          0..1000000
``adam_m``                    0.0         Adam's first moment
``adam_v``                    0.0         Adam's second moment
``adam_beta_1_power``         1.0         beta_1^t after t steps (Adam's bias correction; set it to continue a run)
``adam_beta_2_power``         1.0         beta_2^t
``discard_batch``                         write-only: true drops the gradient of the batch just simulated and its
                                          optimizer step (set between batches, on both copies of every edge)
===================== ======= =========== ===========================================================================

References
++++++++++

.. [1] Wunderlich TC, Pehle C (2021). Event-based backpropagation can compute exact gradients for spiking neural
       networks. Scientific Reports 11:12829.

Transmits
+++++++++

SpikeEvent (never delivered to the target)

See also
++++++++

eventprop_synapse, eventprop_iaf_psc_exp_ps, eventprop_glif3_psc_ps, eventprop_readout_ps

EndUserDocs */

void register_eventprop_reverse_synapse( const std::string& name );

template < typename targetidentifierT >
class eventprop_reverse_synapse : public nest::Connection< targetidentifierT >
{
public:
  typedef EventpropOptimizerProperties CommonPropertiesType;
  typedef nest::Connection< targetidentifierT > ConnectionBase;

  static constexpr nest::ConnectionModelProperties properties = nest::ConnectionModelProperties::HAS_DELAY
    | nest::ConnectionModelProperties::IS_PRIMARY | nest::ConnectionModelProperties::SUPPORTS_HPC;
  static constexpr bool supports_flush_event = false;

  using ConnectionBase::get_delay_steps;
  using ConnectionBase::get_rport;
  using ConnectionBase::get_target;

  typedef EventpropSynapseDummyTarget ConnTestDummyNode;

  void
  check_connection( nest::Node& s, nest::Node& t, size_t receptor_type, const CommonPropertiesType& cp )
  {
    check_weight_in_bounds( "eventprop_reverse_synapse", weight_, cp );
    if ( not dynamic_cast< EventpropSpikingNode* >( &t ) )
    {
      throw nest::IllegalConnection( "eventprop_reverse_synapse cannot connect to " + t.get_name()
        + ": the target (the source of the forward connection) must be a spiking EventProp neuron "
          "(eventprop_iaf_psc_exp_ps, eventprop_glif3_psc_ps)." );
    }
    ConnTestDummyNode dummy_target;
    ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  }

  bool
  send( nest::Event& e, const size_t thread, const CommonPropertiesType& cp )
  {
    auto* target = static_cast< EventpropSpikingNode* >( get_target( thread ) );
    const EventpropSchedule& sched = target->schedule();
    long trial = 0;
    const EventpropPhase phase = sched.phase_of_stamp( e.get_stamp().get_steps(), trial );
    const double x = e.get_offset();
    if ( phase == EventpropPhase::backward or phase == EventpropPhase::flush )
    {
      // (no-op: the c_message of the trial came first and applied the step)
      optimizer_.add( cp, trial, 0.0, weight_ );
      mirror_( *target, sched, trial, x, phase == EventpropPhase::flush );
      return true;
    }
    if ( phase != EventpropPhase::c_message )
    {
      return true;
    }
    if ( trial != msg_trial_ )
    {
      msg_trial_ = trial;
      n_msg_ = 0;
    }
    switch ( n_msg_++ )
    {
    case 0:
      c_ = x;
      break;
    case 1:
      t_max_ = x;
      break;
    case 2:
      kink_ = x;
      break;
    case 3:
      // a spiking source sends here its verdict on the previous trial (-1: it dropped the trial's incoming weight
      // gradients, see max_trial_gradient; readouts send their rate >= 0). The last trial's gradient joins the
      // batch sum as in the forward copy, then the same step is applied; the weight is used only after this.
      commit_trial_gradient_( trial, x < 0.0 );
      optimizer_.add( cp, trial, 0.0, weight_ );
      rate_ = std::max( x, 0.0 );
      break;
    case 4:
      tau_m_ = x;
      break;
    case 5:
      // a GLIF3 source sends -R (alpha currents on R ports; their time constants follow)
    {
      alpha_ = x < 0.0;
      const long n_ports = alpha_ ? static_cast< long >( -x ) : 0;
      tau_syn_ = x;
      if ( alpha_ and not( forward_receptor_ >= 1 and forward_receptor_ <= n_ports ) )
      {
        throw nest::KernelException( "eventprop_reverse_synapse: forward_receptor = "
          + std::to_string( forward_receptor_ ) + " is not a receptor port of its source (an eventprop_glif3_psc_ps "
          + "with ports 1.." + std::to_string( n_ports ) + "): set it to the forward connection's receptor_type." );
      }
      break;
    }
    case 6:
      C_m_ = x;
      // the means have no kink term: their third message is the window start t_w
      window_start_ = std::isnan( t_max_ ) ? kink_ : 0.0;
      kink_ = std::isnan( t_max_ ) ? 0.0 : kink_;
      if ( c_ != 0.0 )
      {
        push_readout_terms_( *target, sched );
      }
      break;
    default:
      if ( alpha_ and n_msg_ - 8 == forward_receptor_ - 1 )
      {
        tau_syn_ = x;  // the time constant of the forward connection's port
      }
      break;
    }
    return true;
  }

  void
  get_status( Dictionary& d ) const
  {
    ConnectionBase::get_status( d );
    get_weight_and_moments( d, weight_, optimizer_ );
    d[ "gradient" ] = gradient_;
    d[ "forward_receptor" ] = static_cast< long >( forward_receptor_ );
    d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
  }

  void
  set_status( const Dictionary& d, nest::ConnectorModel& cm )
  {
    long forward_receptor = forward_receptor_;
    d.update_value( "forward_receptor", forward_receptor );
    if ( forward_receptor < 0 or forward_receptor > 1000000 )
    {
      throw nest::BadProperty( "eventprop_reverse_synapse: forward_receptor = " + std::to_string( forward_receptor )
        + " must be in [0, 1000000] (the forward connection's receptor_type)." );
    }
    ConnectionBase::set_status( d, cm );
    const auto& gcm = dynamic_cast< const nest::GenericConnectorModel< eventprop_reverse_synapse >& >( cm );
    set_weight_and_moments( d, "eventprop_reverse_synapse", gcm.get_common_properties(), weight_, optimizer_ );
    d.update_value( "gradient", gradient_ );
    forward_receptor_ = static_cast< int >( forward_receptor );
    bool discard = false;
    d.update_value( "discard_batch", discard );
    if ( discard )
    {
      trial_gradient_.discard_batch( optimizer_ );
    }
  }

  void
  set_weight( const double w )
  {
    weight_ = w;
  }

private:
  /**
   * A backward message of a spiking source m: the mirror of m's lambda_v follows m's own sweep with the same
   * formula from the same values, and each jump of lambda_v is pushed, times the weight, into the target's
   * accumulator at t_e - d (lambda_I is continuous at m's events: the accumulator carries it).
   */
  void
  mirror_( EventpropSpikingNode& target,
    const EventpropSchedule& sched,
    const long trial,
    const double x,
    const bool flush )
  {
    if ( trial != mirror_trial_ )
    {
      mirror_trial_ = trial;
      t_last_ = sched.duration_ms;
      lv_ = 0.0;
      li_ = 0.0;
      lx_ = 0.0;
      expect_payload_ = false;
      next_k_ = target.trial_spike_count();
      t_next_arrival_ = next_arrival_( target, sched );
    }
    if ( flush )
    {
      gradient_until_( target, sched, -1.0 );
      return;
    }
    double t_event = 0.0;
    double lv_new = 0.0;
    if ( expect_payload_ )
    {
      expect_payload_ = false;
      t_event = t_pending_;
      lv_new = x;
    }
    else if ( x < 0.0 )
    {
      t_event = -x;  // release: lambda_v is 0 before it
    }
    else
    {
      t_pending_ = x;
      expect_payload_ = true;
      return;
    }
    // arrivals at or after this event read the source's adjoint from the previous entry, as the forward copy does
    gradient_until_( target, sched, t_event );
    const double u = t_last_ - t_event;
    if ( u > 0.0 )
    {
      // the source's own formula and order for this port: identical doubles
      eventprop_target_port_adjoint( lv_, lx_, li_, u, tau_m_, tau_syn_, C_m_, alpha_ );
    }
    t_last_ = t_event;
    const double jump = lv_new - lv_;
    lv_ = lv_new;
    if ( jump != 0.0 )
    {
      target.add_adjoint_push( t_event - get_delay_steps() * sched.h, weight_ * jump, tau_m_, tau_syn_, C_m_, alpha_ );
    }
  }

  /**
   * dL/dw += lambda_I of the source at the arrivals t_a = t_k + d >= t_min of the target's spikes not yet counted
   * (latest first, the order in which the forward copy receives the replays), from the mirror's last entry.
   */
  void
  gradient_until_( EventpropSpikingNode& target, const EventpropSchedule& sched, const double t_min )
  {
    while ( next_k_ > 0 )
    {
      const double t_a = t_next_arrival_;
      if ( t_a < t_min )
      {
        return;
      }
      --next_k_;
      t_next_arrival_ = next_arrival_( target, sched );
      if ( t_a >= sched.duration_ms )
      {
        continue;
      }
      double li = li_;
      const double u = t_last_ - t_a;
      if ( alpha_ )
      {
        // lambda_x e / tau of the port, as the source's weight_gradient_at computes it
        double lx = lx_;
        if ( u > 0.0 )
        {
          eventprop_glif3_port_adjoint( lx, li, lv_, u, tau_m_, tau_syn_, C_m_, false );
        }
        const double g = lx * M_E / tau_syn_;
        gradient_ += g;
        trial_gradient_.add( g, mirror_trial_ );
        continue;
      }
      if ( u > 0.0 )
      {
        li = li_ * std::exp( -u / tau_syn_ ) + lv_ * eventprop_kern( u, tau_m_, tau_syn_ ) / C_m_;
      }
      gradient_ += li;
      trial_gradient_.add( li, mirror_trial_ );
    }
  }

  //! the arrival time of the target's spike next_k_ - 1 (-inf if none): kept here, so that the many messages with
  //! nothing to count (most of them) do not read the target's spikes
  double
  next_arrival_( const EventpropSpikingNode& target, const EventpropSchedule& sched ) const
  {
    return next_k_ > 0 ? target.trial_spike_time( next_k_ - 1 ) + get_delay_steps() * sched.h
                       : -std::numeric_limits< double >::infinity();
  }

  //! the previous trial's gradient joins the batch sum, unless the source dropped it (`dropped`: its verdict on
  //! trial - 1)
  void
  commit_trial_gradient_( const long trial, const bool dropped )
  {
    if ( trial_gradient_.pending_before( trial ) )
    {
      trial_gradient_.commit( optimizer_, dropped and trial_gradient_.trial == trial - 1 );
    }
  }

  //! lambda_v, lambda_I of a readout source at t (closed forms of its loss: mean voltage or maximum at t_max_)
  void
  readout_adjoint_( const double t, const double T, double& lv, double& li ) const
  {
    if ( std::isnan( t_max_ ) )
    {
      // forcing c / (T - t_w) exp(-t rate) (rate 0: the mean) on the window [t_w, T]: the readout's own formula
      eventprop_readout_mean_adjoint( t, T, window_start_, c_, rate_, tau_m_, tau_syn_, C_m_, lv, li );
    }
    else if ( t < t_max_ )
    {
      lv = c_ * std::exp( -( t_max_ - t ) / tau_m_ );
      li = c_ * eventprop_kern( t_max_ - t, tau_m_, tau_syn_ ) / C_m_;
    }
    else
    {
      lv = 0.0;
      li = 0.0;
    }
  }

  void
  push_readout_terms_( EventpropSpikingNode& target, const EventpropSchedule& sched )
  {
    const double T = sched.duration_ms;
    const long d_steps = get_delay_steps();
    const double d = d_steps * sched.h;
    for ( size_t k = 0; k < target.trial_spike_count(); ++k )
    {
      // the arrival time as the readout computed it, so that the arrival at its maximum is recognised exactly
      const double t_a = target.trial_arrival_time( k, d_steps );
      if ( t_a >= T )
      {
        continue;
      }
      double lv = 0.0;
      double li = 0.0;
      readout_adjoint_( t_a, T, lv, li );
      double term = weight_ * ( li / tau_syn_ - lv / C_m_ );
      if ( t_a == t_max_ )
      {
        term += kink_;  // the maximum sits on this arrival: moving it moves the maximum
      }
      target.add_to_jump_sum( k, term );
    }
    // the same gradient as the forward copy (readout's adjoint_current_at at t_k + d), in its order (latest first)
    for ( size_t k = target.trial_spike_count(); k-- > 0; )
    {
      const double t_a = target.trial_spike_time( k ) + d;
      if ( t_a < T )
      {
        double li = 0.0;
        if ( std::isnan( t_max_ ) )
        {
          double lv = 0.0;
          eventprop_readout_mean_adjoint( t_a, T, window_start_, c_, rate_, tau_m_, tau_syn_, C_m_, lv, li );
        }
        else if ( t_a < t_max_ )
        {
          li = c_ * eventprop_kern( t_max_ - t_a, tau_m_, tau_syn_ ) / C_m_;
        }
        gradient_ += li;
        trial_gradient_.add( li, msg_trial_ );
      }
    }
  }

  double weight_ = 1.0;
  long msg_trial_ = -1;  //!< trial of the messages received last
  long n_msg_ = 0;       //!< messages received of that trial
  double c_ = 0.0;
  double t_max_ = 0.0;  //!< NaN: loss on the mean voltage
  double kink_ = 0.0;
  double rate_ = 0.0;  //!< 1 / tau_w of an exponentially weighted mean, 0 for the mean
  double window_start_ = 0.0;  //!< the means' response window [t_w, T] (ms)
  // the source's constants, as received
  double tau_m_ = 1.0;
  double tau_syn_ = 1.0;
  double C_m_ = 1.0;
  // mirror of a spiking source's adjoint in the backward pass
  long mirror_trial_ = -1;
  double t_last_ = 0.0;
  double lv_ = 0.0;
  double li_ = 0.0;
  double lx_ = 0.0;  //!< lambda_x of the port (GLIF3 source)
  double t_pending_ = 0.0;
  bool expect_payload_ = false;
  // (in the padding before next_k_: no memory per connection beyond lx_)
  bool alpha_ = false;         //!< the source has alpha currents (eventprop_glif3_psc_ps)
  int forward_receptor_ = 0;  //!< receptor_type of the forward connection (port of a GLIF3 source; 0 otherwise)
  size_t next_k_ = 0;  //!< the target's spikes [0, next_k_) have not been counted in the gradient yet
  double t_next_arrival_ = 0.0;  //!< next_arrival_() for the current next_k_
  double gradient_ = 0.0;
  EventpropTrialGradient trial_gradient_;  //!< the last trial's gradient, not yet in the batch sum
  EpropOptimizerState optimizer_;
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eventprop_reverse_synapse< targetidentifierT >::properties;

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_REVERSE_SYNAPSE_H
