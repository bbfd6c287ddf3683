/*
 *  eprop_vector_synapse.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_VECTOR_SYNAPSE_H
#define NESTGRAD_EPROP_VECTOR_SYNAPSE_H

#include <string>

// NEST public headers
#include "connection.h"
#include "connector_model.h"
#include "exceptions.h"

#include "eprop_inline_optimizer.h"
#include "eprop_nestml_node.h"

namespace nestgrad
{

/* BeginUserDocs: synapse, e-prop plasticity

Short description
+++++++++++++++++

E-prop synapse for neurons whose eligibility vector has more than two components or that have several receptor ports

Description
+++++++++++

``eprop_vector_synapse`` computes e-prop weight updates step by step over the window between two presynaptic spikes,
as NEST's ``eprop_synapse`` does (NEST 3.10 semantics: ``eprop_isi_trace_cutoff`` of the target, flush events,
gradients summed over the optimizer's ``batch_size`` steps and applied at the first spike after a batch boundary),
for targets whose e-prop eligibility vector has up to six components and whose spike input has several receptor
ports. NEST's ``eprop_synapse`` keeps two components (``z_bar`` and ``epsilon``) and passes no receptor port, which
is enough for NEST's own e-prop neurons but not, e.g., for an adaptive neuron with exponential synaptic currents
(membrane, current and adaptation: three components) or a neuron with one synaptic time constant per receptor.

Targets are nestgrad's e-prop neurons generated from NESTML (``eprop_*_nestml``, docs/nestml_eprop.md), whose
eligibility recursion the generator derives from their equations, and the GLIF3 neuron ``eprop_glif3_psc``; the
target computes the recursion for the port the connection's ``receptor_type`` selects.
A neuron tells which synapse it needs in its status (``eprop_synapse_model``); connecting a neuron that needs this
synapse with ``eprop_synapse`` fails with an error that says so.

The optimizer is part of the synapse, with the settings dictionary of ``eprop_event_synapse``.

Parameters
++++++++++

Common properties (``nest.SetDefaults("eprop_vector_synapse", {"optimizer": {...}})``): ``type``
(``gradient_descent`` or ``adam``), ``batch_size``, ``eta``, ``Wmin``, ``Wmax``, ``beta_1``, ``beta_2``,
``epsilon`` (defaults 1, 1e-4, -100, 100, 0.9, 0.999, 1e-7); ``optimize_each_step`` must be false.

Per connection: ``weight`` (within [Wmin, Wmax]), ``delay`` (one step), ``receptor_type``, Adam's moments
``adam_m`` and ``adam_v``.

References
++++++++++

.. [1] Bellec G et al. (2020). A solution to the learning dilemma for recurrent networks of spiking neurons.
       Nature Communications 11:3625. https://doi.org/10.1038/s41467-020-17236-y

Transmits
+++++++++

SpikeEvent

See also
++++++++

eprop_synapse, eprop_event_synapse

EndUserDocs */

void register_eprop_vector_synapse( const std::string& name );

template < typename targetidentifierT >
class eprop_vector_synapse : public nest::Connection< targetidentifierT >
{
public:
  typedef EpropOptimizerProperties CommonPropertiesType;
  typedef nest::Connection< targetidentifierT > ConnectionBase;

  static constexpr nest::ConnectionModelProperties properties = nest::ConnectionModelProperties::HAS_DELAY
    | nest::ConnectionModelProperties::IS_PRIMARY | nest::ConnectionModelProperties::SUPPORTS_HPC;

  //! Flush events let a window of a silent presynaptic neuron be computed in pieces, as for eprop_synapse.
  static constexpr bool supports_flush_event = true;

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
  double weight_ = 1.0;
  long t_spike_previous_ = 0;  //!< step of the previous presynaptic spike, 0: none yet
  bool previous_was_flush_event_ = false;
  EpropVectorTrace trace_;
  EpropOptimizerState optimizer_;
};

template < typename targetidentifierT >
constexpr nest::ConnectionModelProperties eprop_vector_synapse< targetidentifierT >::properties;

template < typename targetidentifierT >
void
eprop_vector_synapse< targetidentifierT >::check_connection( nest::Node& s,
  nest::Node& t,
  size_t receptor_type,
  const CommonPropertiesType& cp )
{
  if ( get_delay_steps() != 1 )
  {
    throw nest::IllegalConnection( "eprop_vector_synapse requires a delay of one simulation step." );
  }
  auto* target = dynamic_cast< EpropNestmlNode* >( &t );
  if ( not target )
  {
    throw nest::IllegalConnection( "eprop_vector_synapse cannot connect to " + t.get_name()
      + ": the target must be one of nestgrad's e-prop neurons for this synapse (eprop_*_nestml, eprop_glif3_psc). "
        "Use eprop_synapse for NEST's e-prop neurons and eprop_readout." );
  }
  if ( target->eligibility_size() > EpropVectorTrace::max_size )
  {
    throw nest::IllegalConnection( "eprop_vector_synapse: " + t.get_name() + " has "
      + std::to_string( target->eligibility_size() ) + " eligibility states, at most "
      + std::to_string( EpropVectorTrace::max_size ) + " are supported." );
  }
  check_weight_in_bounds( "eprop_vector_synapse", weight_, cp );
  ConnTestDummyNode dummy_target;
  ConnectionBase::check_connection_( dummy_target, s, t, receptor_type );
  target->register_vector_connection();
}

template < typename targetidentifierT >
inline bool
eprop_vector_synapse< targetidentifierT >::send( nest::Event& e, const size_t thread, const CommonPropertiesType& cp )
{
  // the target's type was checked in check_connection
  auto* target = static_cast< EpropNestmlNode* >( get_target( thread ) );
  const long t_spike = e.get_stamp().get_steps();
  const bool is_flush_event = e.is_flush_event();

  if ( t_spike_previous_ != 0 )
  {
    target->compute_gradient_vector(
      t_spike, t_spike_previous_, get_rport(), trace_, is_flush_event, previous_was_flush_event_ );
    if ( not is_flush_event )
    {
      // the window ends with the step before the spike (NEST 3.10's update step)
      optimizer_.add( cp, t_spike - 1, trace_.gradient, weight_ );
    }
  }

  target->erase_used_eprop_history( t_spike, t_spike_previous_ );
  t_spike_previous_ = t_spike;
  previous_was_flush_event_ = is_flush_event;

  if ( not is_flush_event )
  {
    e.set_receiver( *target );
    e.set_weight( weight_ );
    e.set_delay_steps( get_delay_steps() );
    e.set_rport( get_rport() );
    e();
  }
  return true;
}

template < typename targetidentifierT >
void
eprop_vector_synapse< targetidentifierT >::get_status( Dictionary& d ) const
{
  ConnectionBase::get_status( d );
  get_weight_and_moments( d, weight_, optimizer_ );
  d[ nest::names::size_of ] = static_cast< long >( sizeof( *this ) );
}

template < typename targetidentifierT >
void
eprop_vector_synapse< targetidentifierT >::set_status( const Dictionary& d, nest::ConnectorModel& cm )
{
  ConnectionBase::set_status( d, cm );
  const auto& gcm = dynamic_cast< const nest::GenericConnectorModel< eprop_vector_synapse >& >( cm );
  set_weight_and_moments( d, "eprop_vector_synapse", gcm.get_common_properties(), weight_, optimizer_ );
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_VECTOR_SYNAPSE_H
