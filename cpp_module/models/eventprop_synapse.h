/*
 *  eventprop_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_SYNAPSE_H
#define NESTGRAD_EVENTPROP_SYNAPSE_H

#include <limits>
#include <string>

// NEST public headers
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eprop_inline_optimizer.h"
#include "eventprop_trial_gradient.h"
#include "eventprop_node.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, EventProp

Short description
+++++++++++++++++

Forward synapse of nestgrad's EventProp models: delivers off-grid spikes, offset field unchanged

Description
+++++++++++

``eventprop_synapse`` connects nestgrad's EventProp nodes (``eventprop_iaf_psc_exp_ps``, ``eventprop_glif3_psc_ps``,
``eventprop_readout_ps``, ``eventprop_input_ps``, ``eventprop_probe_ps``). It delivers each spike with its weight
and delay and leaves the
event's offset field as NEST transmitted it, so that the exact spike time (forward pass) or a payload (the
backward pass of docs/eventprop_nest_design.md) reaches the target. The target adds ``weight`` to its synaptic
current I at the spike's exact arrival time t_spike + delay (an ``eventprop_glif3_psc_ps`` adds weight e / tau_r to
the alpha current of port r = ``receptor_type``, 1..len(tau_syn); port 0 is refused for it).

Connecting to any other model is refused: NEST's own models would read a payload as a time.

Gradient. When its target runs the backward pass (``backward`` = true), the synapse receives its source's
replays (in the backward window, each spike k of the source as two spikes whose offsets carry its forward time
t_k and then the source's adjoint; releases from refractoriness as one negative value, skipped here) and adds the
target's adjoint current lambda_I(t_k + delay) to ``gradient`` for every arrival before the end of the trial:

.. math::

   \frac{\partial L}{\partial w} = \sum_k \lambda_I(t_k + d)

(for an ``eventprop_glif3_psc_ps`` target lambda_x,r(t_k + d) e / tau_r of the connection's port: the target's
``weight_gradient_at``), summed over the trials simulated since ``gradient`` was last set. Replays and the loss
messages of readouts are not passed on to the target. A trial's gradient joins the batch sum at the synapse's first
event of a later trial, unless the target dropped it (``max_trial_gradient`` of ``eventprop_iaf_psc_exp_ps``: the
synapse reports the trial's gradient to its target when the source's backward sweep ends, with the source's flush
message).

Optimizer (common properties, ``nest.SetDefaults("eventprop_synapse", {"optimizer": {...}})``, the dictionary of
``eprop_event_synapse`` with ``eta`` = 0 and ``Wmin`` = -inf, ``Wmax`` = +inf by default): the gradients of
``batch_size`` consecutive trials are averaged and applied once per batch, by gradient descent (w -= eta g) or
Adam, and the weight is clipped to [Wmin, Wmax]. The step is applied at the synapse's first event of the next batch
(every EventProp node sends one message per trial, in step n_c, so no synapse misses a batch; batches without
events count with zero gradient); the reverse copy (``eventprop_reverse_synapse``) computes the same gradient in
the same order and applies the same step, so both copies stay equal bit for bit. After the last batch, simulate one
more trial period to apply its step. Adam's moments are ``adam_m`` and ``adam_v`` per connection.

Weight bounds and Dale's law. [Wmin, Wmax] is a common property, so bounds per projection and Dale's law (a
neuron's outgoing weights keep one sign: excitatory in [max(Wmin, 0), Wmax], inhibitory in [Wmin, min(Wmax, 0)])
are set on copies of the model (``nest.CopyModel``), one per projection and sign of source, and of
``eventprop_reverse_synapse`` alike, with the same optimizer dictionary: no memory per synapse, no test per event,
and both copies of an edge clip to the same bounds with the same ``std::clamp``, so they stay equal bit for bit.
nestgrad's builder names them ``eventprop_synapse__<projection>`` (``_exc``/``_inh`` for the sign); a weight
outside the bounds is refused at ``Connect`` and by ``SetStatus``.

Parameters
++++++++++

===================== ======= =========== ===========================================================================
``weight``            pA      1.0         jump of the target's synaptic current
``delay``             ms      1.0         transmission delay, a multiple of the resolution
``gradient``          1/pA    0.0         dL/dw summed over the trials since it was last set
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

SpikeEvent

See also
++++++++

eventprop_iaf_psc_exp_ps, eventprop_readout_ps, eventprop_input_ps

EndUserDocs */

void register_eventprop_synapse( const std::string& name );

/**
 * Optimizer settings of the EventProp synapse models: the "optimizer" dictionary of nestgrad's e-prop synapses
 * (gradient_descent or adam, batch_size in trials, eta, Wmin, Wmax, beta_1, beta_2, epsilon), with eta = 0 and
 * unbounded weights by default (no learning until asked for).
 */
class EventpropOptimizerProperties : public EpropOptimizerProperties
{
public:
  EventpropOptimizerProperties()
  {
    eta_ = 0.0;
    Wmin_ = -std::numeric_limits< double >::infinity();
    Wmax_ = std::numeric_limits< double >::infinity();
  }
};

//! Test node for check_connection: accepts SpikeEvents.
class EventpropSynapseDummyTarget : public nest::ConnTestDummyNodeBase
{
public:
  using nest::ConnTestDummyNodeBase::handles_test_event;
  size_t
  handles_test_event( nest::SpikeEvent&, size_t ) override
  {
    return nest::invalid_port;
  }
};

template < typename targetidentifierT >
class eventprop_synapse : public nest::Connection< targetidentifierT >
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
    check_weight_in_bounds( "eventprop_synapse", weight_, cp );
    if ( not dynamic_cast< EventpropNode* >( &t ) )
    {
      throw nest::IllegalConnection( "eventprop_synapse cannot connect to " + t.get_name()
        + ": the target must be one of nestgrad's EventProp nodes (eventprop_iaf_psc_exp_ps, eventprop_readout_ps, "
          "eventprop_probe_ps, eventprop_glif3_psc_ps)." );
    }
    static_cast< EventpropNode& >( t ).check_forward_port( receptor_type );
    ConnTestDummyNode dummy_target;
    ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  }

  bool
  send( nest::Event& e, const size_t thread, const CommonPropertiesType& cp )
  {
    auto* target = static_cast< EventpropNode* >( get_target( thread ) );
    const EventpropSchedule& sched = target->schedule();
    if ( sched.backward )
    {
      long trial = 0;
      const EventpropPhase phase = sched.phase_of_stamp( e.get_stamp().get_steps(), trial );
      if ( phase != EventpropPhase::none )
      {
        // the first event of a later trial: the last trial's gradient joins the batch sum (unless the target
        // dropped it), then, after a batch boundary, the step of the batches completed is applied
        commit_trial_gradient_( *target, trial );
        optimizer_.add( cp, trial, 0.0, weight_ );
      }
      if ( phase == EventpropPhase::flush )
      {
        // the source's backward sweep has ended: this trial's gradient is complete
        if ( trial_gradient_.trial == trial )
        {
          target->note_trial_gradient( trial, trial_gradient_.value );
        }
        return true;
      }
      if ( phase == EventpropPhase::backward )
      {
        // the source's backward messages: a replayed spike is two values (its forward time, then the source's
        // lambda_v), a release one negative value; the gradient is lambda_I of the target at the arrival
        const double x = e.get_offset();
        if ( expect_payload_ )
        {
          expect_payload_ = false;
          return true;
        }
        if ( x < 0.0 )
        {
          return true;  // a release of the source
        }
        expect_payload_ = true;
        const double t_arrival = x + get_delay_steps() * sched.h;
        if ( t_arrival < sched.duration_ms )
        {
          const double g = target->weight_gradient_at( t_arrival, static_cast< long >( get_rport() ) );
          gradient_ += g;
          trial_gradient_.add( g, trial );
        }
        return true;
      }
      if ( phase != EventpropPhase::forward and phase != EventpropPhase::y_exchange )
      {
        return true;  // not for this connection's target
      }
    }
    e.set_receiver( *target );
    e.set_weight( weight_ );
    e.set_delay_steps( get_delay_steps() );
    e.set_rport( get_rport() );
    e();
    return true;
  }

  void
  get_status( Dictionary& d ) const
  {
    ConnectionBase::get_status( d );
    get_weight_and_moments( d, weight_, optimizer_ );
    d[ "gradient" ] = gradient_;
    d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
  }

  void
  set_status( const Dictionary& d, nest::ConnectorModel& cm )
  {
    ConnectionBase::set_status( d, cm );
    const auto& gcm = dynamic_cast< const nest::GenericConnectorModel< eventprop_synapse >& >( cm );
    set_weight_and_moments( d, "eventprop_synapse", gcm.get_common_properties(), weight_, optimizer_ );
    d.update_value( "gradient", gradient_ );
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
  //! at the first event of a later trial: the last trial's gradient joins the batch sum unless the target dropped it
  void
  commit_trial_gradient_( const EventpropNode& target, const long trial )
  {
    if ( trial_gradient_.pending_before( trial ) )
    {
      trial_gradient_.commit( optimizer_, target.trial_gradient_dropped( trial_gradient_.trial ) );
    }
  }

  double weight_ = 1.0;
  double gradient_ = 0.0;        //!< dL/dw summed over the trials since it was last set (1/pA)
  EventpropTrialGradient trial_gradient_;  //!< the last trial's dL/dw, not yet in the batch sum
  bool expect_payload_ = false;  //!< the next backward message is the second value of a replay
  EpropOptimizerState optimizer_;
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eventprop_synapse< targetidentifierT >::properties;

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_SYNAPSE_H
