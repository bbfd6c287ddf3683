/*
 *  eprop_event_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_EVENT_SYNAPSE_H
#define NESTGRAD_EPROP_EVENT_SYNAPSE_H

#include <algorithm>
#include <cmath>
#include <string>

// NEST public headers
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eprop_event_node.h"
#include "eprop_inline_optimizer.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, e-prop plasticity

Short description
+++++++++++++++++

E-prop synapse whose gradient costs O(1) per presynaptic spike (event-driven e-prop)

Description
+++++++++++

``eprop_event_synapse`` computes the same e-prop weight updates as NEST's ``eprop_synapse`` (NEST 3.10
semantics: gradient of the window between two presynaptic spikes, limited by the target's
``eprop_isi_trace_cutoff``, summed over the optimizer's ``batch_size`` steps and applied by gradient descent or Adam
at the first spike after the batch boundary), but it does not loop over the time steps of the window. The target
neuron keeps sums of its learning signal and surrogate gradient weighted by powers of its trace constants, once
per neuron and step, forward from and backward to the boundaries of 32-step segments; the synapse gets its window
gradient from one entry per segment the window crosses [1]_ (docs/event_driven_eprop.md). No sum is subtracted from
another, so nothing cancels: weight updates equal the step-by-step rule to ~1e-14 relative. The sums of all neurons
of a thread are stored step-major, so that the synapses of one source read them as a stream. The synapse does not
take part in NEST's per-spike history bookkeeping.

The optimizer is part of the synapse (no separate heap object): memory per synapse is ``sizeof`` bytes.

Targets must be nestgrad neurons that keep the running sums: ``eprop_iaf_psc_exp`` and the NESTML-generated e-prop
neurons whose eligibility recursion has constant coefficients (no spike-triggered increments, at most two states
per port: ``eprop_iaf_psc_delta_nestml``, ``eprop_iaf_psc_exp_nestml``, ``eprop_iaf_psc_exp_exc_inh_nestml``; the
synapse's ``receptor_type`` selects the port). Connecting to any other model fails with an error that says why
(NEST's ``eprop_iaf`` family and ``eprop_readout`` only expose the per-step history; adaptive models and
``eprop_glif3_psc`` have time-varying eligibility coefficients). Connections into readouts keep using
``eprop_synapse``.

Differences from ``eprop_synapse``:

* ``optimize_each_step`` must be false (one update per batch, the setting used for training);
* flush events are ignored (the window of a silent presynaptic neuron is computed at its next spike);
* the learning rate in effect is ``eta`` from the first update on (NEST applies the first value ``eta`` was ever
  set to at a synapse's first update and the current one afterwards);
* the delay must be one time step, as for every e-prop synapse in NEST 3.10.

Parameters
++++++++++

Common properties (``nest.SetDefaults("eprop_event_synapse", {"optimizer": {...}})``):

=================== ======= ================== ===================================================================
Parameter           Unit    Default            Description
=================== ======= ================== ===================================================================
``type``                    gradient_descent   ``gradient_descent`` or ``adam``
``batch_size``              1                  steps over which gradients are summed and averaged
``eta``                     1e-4               learning rate
``Wmin``            pA      -100.0             lower weight bound
``Wmax``            pA      100.0              upper weight bound
``beta_1``                  0.9                Adam: decay of the first moment
``beta_2``                  0.999              Adam: decay of the second moment
``epsilon``                 1e-7               Adam: regulariser of the denominator
``optimize_each_step``      false              must be false
=================== ======= ================== ===================================================================

Per connection: ``weight`` (pA, within [Wmin, Wmax]), ``delay`` (ms, one step), Adam's moments ``adam_m`` and
``adam_v`` and its bias-correction powers ``adam_beta_1_power``, ``adam_beta_2_power`` (beta^t after t steps;
readable and writable, e.g. to resume training).

References
++++++++++

.. [1] nestgrad, docs/event_driven_eprop.md: window sums of e-prop from per-neuron running sums.
.. [2] Bellec G, Scherr F, Subramoney A, Hajek E, Salaj D, Legenstein R, Maass W (2020). A solution to the learning
       dilemma for recurrent networks of spiking neurons. Nature Communications 11:3625.
.. [3] Korcsak-Gorzo A, Espinoza Valverde JA, Stapmanns J, Plesser HE, Dahmen D, Bolten M, van Albada SJ,
       Diesmann M (2025). Event-driven eligibility propagation in large sparse networks: efficiency shaped by
       biological realism. arXiv:2511.21674.

Transmits
+++++++++

SpikeEvent

See also
++++++++

eprop_synapse, eprop_iaf_psc_exp

EndUserDocs */

void register_eprop_event_synapse( const std::string& name );

//! Optimizer settings shared by all eprop_event_synapse connections of one synapse model.
using EpropEventSynapseCommonProperties = EpropOptimizerProperties;

template < typename targetidentifierT >
class eprop_event_synapse : public nest::Connection< targetidentifierT >
{
public:
  typedef EpropEventSynapseCommonProperties CommonPropertiesType;
  typedef nest::Connection< targetidentifierT > ConnectionBase;

  static constexpr nest::ConnectionModelProperties properties = nest::ConnectionModelProperties::HAS_DELAY
    | nest::ConnectionModelProperties::IS_PRIMARY | nest::ConnectionModelProperties::SUPPORTS_HPC;

  //! Flush events carry no information this synapse needs.
  static constexpr bool supports_flush_event = false;

  using ConnectionBase::get_delay_steps;
  using ConnectionBase::get_rport;
  using ConnectionBase::get_target;

  void get_status( Dictionary& d ) const;
  void set_status( const Dictionary& d, nest::ConnectorModel& cm );

  bool send( nest::Event& e, size_t thread, const CommonPropertiesType& cp );

  typedef EpropSynapseDummyTarget ConnTestDummyNode;

  void check_connection( nest::Node& s, nest::Node& t, size_t receptor_type, const CommonPropertiesType& cp );

  void
  set_weight( const double w )
  {
    weight_ = w;
  }

private:
  /**
   * Connections of one source are contiguous in NEST's connector and are sent one after the other: ask the cache
   * now for what the connections a few places ahead will read, so that memory latency overlaps with work instead of
   * adding up. Two stages: the target four places ahead (its fields event_gradient() reads), and for the connection
   * two places ahead, whose target's fields have arrived by now, the history rows its window starts with.
   */
  void
  prefetch_ahead_( const size_t thread ) const
  {
    const eprop_event_synapse* ahead = this;
    for ( int k = 1; k <= 4; ++k )
    {
      if ( not ahead->source_has_more_targets() )
      {
        return;
      }
      ++ahead;
      if ( k == 2 and ahead->t_spike_previous_ > 0 )
      {
        const auto* node = static_cast< const EpropEventNode* >( ahead->get_target( thread ) );
        if ( const EventHistoryStore* store = node->event_store() )
        {
          store->prefetch( ahead->t_spike_previous_ - 1, node->event_column() );
        }
      }
    }
    const auto* node = static_cast< const EpropEventNode* >( ahead->get_target( thread ) );
    __builtin_prefetch( node );  // the virtual function table pointer
    const char* hot = static_cast< const char* >( node->event_hot_address() );
    for ( int line = 0; line < 5; ++line )
    {
      __builtin_prefetch( hot + 64 * line );
    }
  }

  double weight_ = 1.0;
  long t_spike_previous_ = 0;  //!< step of the previous presynaptic spike, 0: none yet
  EventEpropTrace trace_;
  EpropOptimizerState optimizer_;
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eprop_event_synapse< targetidentifierT >::properties;

template < typename targetidentifierT >
void
eprop_event_synapse< targetidentifierT >::check_connection( nest::Node& s,
  nest::Node& t,
  size_t receptor_type,
  const CommonPropertiesType& cp )
{
  if ( get_delay_steps() != 1 )
  {
    throw nest::IllegalConnection( "eprop_event_synapse requires a delay of one simulation step." );
  }
  auto* target = dynamic_cast< EpropEventNode* >( &t );
  if ( not target )
  {
    throw nest::IllegalConnection( "eprop_event_synapse cannot connect to " + t.get_name()
      + ": the target must keep e-prop running sums (nestgrad's eprop_iaf_psc_exp and NESTML e-prop neurons with "
        "constant eligibility coefficients); NEST's e-prop neurons and eprop_readout only keep the per-step history "
        "of eprop_synapse. Use eprop_synapse for these targets." );
  }
  const std::string refusal = target->event_synapse_refusal();
  if ( not refusal.empty() )
  {
    throw nest::IllegalConnection( "eprop_event_synapse cannot connect to " + t.get_name() + ": " + refusal );
  }
  check_weight_in_bounds( "eprop_event_synapse", weight_, cp );
  ConnTestDummyNode dummy_target;
  ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  target->register_event_synapse();
}

template < typename targetidentifierT >
inline bool
eprop_event_synapse< targetidentifierT >::send( nest::Event& e, const size_t thread, const CommonPropertiesType& cp )
{
  // the target's type was checked in check_connection
  auto* target = static_cast< EpropEventNode* >( get_target( thread ) );
  const long t_spike = e.get_stamp().get_steps();
  prefetch_ahead_( thread );
  if ( t_spike_previous_ != 0 )
  {
    const double gradient = target->event_gradient( t_spike, t_spike_previous_, weight_, get_rport(), trace_ );
    optimizer_.add( cp, t_spike - 1, gradient, weight_ );
  }
  if ( EventHistoryStore* store = target->event_store() )
  {
    // what EpropEventNode::move_event_reader does for targets with a running-sum store, without the virtual call
    store->move_reader( t_spike_previous_ > 0 ? t_spike_previous_ - 1 : -1, t_spike - 1, target->event_column() );
  }
  else
  {
    target->move_event_reader( t_spike_previous_, t_spike, get_rport() );
  }
  t_spike_previous_ = t_spike;

  e.set_receiver( *target );
  e.set_weight( weight_ );
  e.set_delay_steps( get_delay_steps() );
  e.set_rport( get_rport() );
  e();
  return true;
}

template < typename targetidentifierT >
void
eprop_event_synapse< targetidentifierT >::get_status( Dictionary& d ) const
{
  ConnectionBase::get_status( d );
  get_weight_and_moments( d, weight_, optimizer_ );
  d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
}

template < typename targetidentifierT >
void
eprop_event_synapse< targetidentifierT >::set_status( const Dictionary& d, nest::ConnectorModel& cm )
{
  ConnectionBase::set_status( d, cm );
  const auto& gcm = dynamic_cast< const nest::GenericConnectorModel< eprop_event_synapse >& >( cm );
  set_weight_and_moments( d, "eprop_event_synapse", gcm.get_common_properties(), weight_, optimizer_ );
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_EVENT_SYNAPSE_H
