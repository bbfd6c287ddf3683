/*
 *  eventprop_probe_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_probe_ps.h"

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_probe_ps( const std::string& name )
{
  nest::register_node_model< eventprop_probe_ps >( name );
}

void
eventprop_probe_ps::handle( nest::SpikeEvent& e )
{
  received_steps_.push_back( e.get_stamp().get_steps() + e.get_delay_steps() );
  received_offsets_.push_back( e.get_offset() );
  received_weights_.push_back( e.get_weight() );
}

void
eventprop_probe_ps::update( nest::Time const& origin, const long from, const long to )
{
  for ( long lag = from; lag < to; ++lag )
  {
    const long stamp = origin.get_steps() + lag + 1;
    for ( size_t i = 0; i < emit_steps_.size(); ++i )
    {
      if ( emit_steps_[ i ] == stamp )
      {
        send_spike_( lag, emit_offsets_[ i ] );
      }
    }
  }
}

void
eventprop_probe_ps::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  d[ "emit_steps" ] = emit_steps_;
  d[ "emit_offsets" ] = emit_offsets_;
  d[ "received_steps" ] = received_steps_;
  d[ "received_offsets" ] = received_offsets_;
  d[ "received_weights" ] = received_weights_;
}

void
eventprop_probe_ps::set_status( const Dictionary& d )
{
  std::vector< long > steps = emit_steps_;
  std::vector< double > offsets = emit_offsets_;
  d.update_value( "emit_steps", steps );
  d.update_value( "emit_offsets", offsets );
  if ( steps.size() != offsets.size() )
  {
    throw nest::BadProperty( "eventprop_probe_ps: emit_steps has " + std::to_string( steps.size() )
      + " entries but emit_offsets has " + std::to_string( offsets.size() ) + "; they must have the same length." );
  }
  EventpropNode::set_status( d );
  emit_steps_ = steps;
  emit_offsets_ = offsets;
}

}  // namespace nestgrad
