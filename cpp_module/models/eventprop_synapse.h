/*
 *  eventprop_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_SYNAPSE_H
#define NESTGRAD_EVENTPROP_SYNAPSE_H

#include <string>

// NEST public headers
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eventprop_node.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, EventProp

Short description
+++++++++++++++++

Forward synapse of nestgrad's EventProp models: delivers off-grid spikes, offset field unchanged

Description
+++++++++++

``eventprop_synapse`` connects nestgrad's EventProp nodes (``eventprop_iaf_psc_exp_ps``, ``eventprop_readout_ps``,
``eventprop_input_ps``, ``eventprop_probe_ps``). It delivers each spike with its weight and delay and leaves the
event's offset field as NEST transmitted it, so that the exact spike time (forward pass) or a payload (the
backward pass of docs/eventprop_nest_design.md) reaches the target. The target adds ``weight`` to its synaptic
current I at the spike's exact arrival time t_spike + delay.

Connecting to any other model is refused: NEST's own models would read a payload as a time.

This version is the forward synapse of the first EventProp slice: gradient accumulation and the optimizer
(docs/eventprop_nest_design.md, section 5) are not implemented yet.

Parameters
++++++++++

=========== ======= =========== ============================================================================
``weight``  pA      1.0         jump of the target's synaptic current
``delay``   ms      1.0         transmission delay, a multiple of the resolution
=========== ======= =========== ============================================================================

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
  typedef nest::CommonSynapseProperties CommonPropertiesType;
  typedef nest::Connection< targetidentifierT > ConnectionBase;

  static constexpr nest::ConnectionModelProperties properties = nest::ConnectionModelProperties::HAS_DELAY
    | nest::ConnectionModelProperties::IS_PRIMARY | nest::ConnectionModelProperties::SUPPORTS_HPC;
  static constexpr bool supports_flush_event = false;

  using ConnectionBase::get_delay_steps;
  using ConnectionBase::get_rport;
  using ConnectionBase::get_target;

  typedef EventpropSynapseDummyTarget ConnTestDummyNode;

  void
  check_connection( nest::Node& s, nest::Node& t, size_t receptor_type, const CommonPropertiesType& )
  {
    if ( not dynamic_cast< EventpropNode* >( &t ) )
    {
      throw nest::IllegalConnection( "eventprop_synapse cannot connect to " + t.get_name()
        + ": the target must be one of nestgrad's EventProp nodes (eventprop_iaf_psc_exp_ps, eventprop_readout_ps, "
          "eventprop_probe_ps)." );
    }
    ConnTestDummyNode dummy_target;
    ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  }

  bool
  send( nest::Event& e, const size_t thread, const CommonPropertiesType& )
  {
    e.set_receiver( *get_target( thread ) );
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
    d[ nest::names::weight ] = weight_;
    d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
  }

  void
  set_status( const Dictionary& d, nest::ConnectorModel& cm )
  {
    ConnectionBase::set_status( d, cm );
    d.update_value( nest::names::weight, weight_ );
  }

  void
  set_weight( const double w )
  {
    weight_ = w;
  }

private:
  double weight_ = 1.0;
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eventprop_synapse< targetidentifierT >::properties;

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_SYNAPSE_H
