/*
 *  eventprop_exchange_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_EXCHANGE_SYNAPSE_H
#define NESTGRAD_EVENTPROP_EXCHANGE_SYNAPSE_H

#include <string>

// NEST public headers
#include "common_synapse_properties.h"
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eventprop_iaf_psc_exp_ps.h"
#include "eventprop_spiking_node.h"
#include "eventprop_synapse.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, EventProp

Short description
+++++++++++++++++

Loss exchange between the spiking outputs of a first-spike loss: passes only the message of step n_T

Description
+++++++++++

``eventprop_exchange_synapse`` connects two output neurons (``eventprop_iaf_psc_exp_ps`` with
``output_index`` >= 0) of a first-spike loss (docs/eventprop_nest_design.md, section 8.2). In step n_T of each
trial's period every output sends its first spike time of the trial (trial-local ms; T if it did not spike) as the
offset of one off-grid spike; this synapse delivers that message, and only that one, on port 1 (on port 0 to an
``eventprop_glif3_psc_ps``, whose ports 1..R take forward connections), so that the target can tell it from spikes
arriving over forward connections between outputs (a recurrent output layer) in the same step. Forward spikes, the
constants of step n_c and backward messages of the source are dropped: the connection
never changes the target's dynamics or gradients. It has no weight to learn (``weight`` is ignored).

Connecting to any other target model than ``eventprop_iaf_psc_exp_ps`` and ``eventprop_glif3_psc_ps`` is refused.

Parameters
++++++++++

============ ======= =========== ===========================================================================
``delay``    ms      1.0         transmission delay, a multiple of the resolution, <= the layout's delay_bound
============ ======= =========== ===========================================================================

Transmits
+++++++++

SpikeEvent

See also
++++++++

eventprop_iaf_psc_exp_ps, eventprop_synapse

EndUserDocs */

void register_eventprop_exchange_synapse( const std::string& name );

template < typename targetidentifierT >
class eventprop_exchange_synapse : public nest::Connection< targetidentifierT >
{
public:
  typedef nest::CommonSynapseProperties CommonPropertiesType;
  typedef nest::Connection< targetidentifierT > ConnectionBase;

  static constexpr nest::ConnectionModelProperties properties = nest::ConnectionModelProperties::HAS_DELAY
    | nest::ConnectionModelProperties::IS_PRIMARY | nest::ConnectionModelProperties::SUPPORTS_HPC;
  static constexpr bool supports_flush_event = false;

  using ConnectionBase::get_delay_steps;
  using ConnectionBase::get_target;

  typedef EventpropSynapseDummyTarget ConnTestDummyNode;

  void
  check_connection( nest::Node& s, nest::Node& t, size_t receptor_type, const CommonPropertiesType& )
  {
    // (the source may be a proxy of a node on another thread or rank: only the target can be checked)
    if ( not dynamic_cast< EventpropSpikingNode* >( &t ) )
    {
      throw nest::IllegalConnection( "eventprop_exchange_synapse cannot connect to " + t.get_name()
        + ": the target must be an eventprop_iaf_psc_exp_ps or eventprop_glif3_psc_ps (an output of a first-spike "
          "loss)." );
    }
    ConnTestDummyNode dummy_target;
    ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  }

  bool
  send( nest::Event& e, const size_t thread, const CommonPropertiesType& )
  {
    auto* target = static_cast< EventpropSpikingNode* >( get_target( thread ) );
    const EventpropSchedule& sched = target->schedule();
    long trial = 0;
    if ( not sched.backward
      or sched.phase_of_stamp( e.get_stamp().get_steps(), trial ) != EventpropPhase::y_exchange )
    {
      return true;
    }
    e.set_receiver( *target );
    e.set_weight( 0.0 );
    e.set_delay_steps( get_delay_steps() );
    e.set_rport( target->exchange_port() );
    e();
    return true;
  }

  void
  get_status( Dictionary& d ) const
  {
    ConnectionBase::get_status( d );
    d[ nest::names::weight ] = 0.0;
    d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
  }

  void
  set_status( const Dictionary& d, nest::ConnectorModel& cm )
  {
    ConnectionBase::set_status( d, cm );
  }

  void
  set_weight( const double )
  {
  }
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eventprop_exchange_synapse< targetidentifierT >::properties;

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_EXCHANGE_SYNAPSE_H
