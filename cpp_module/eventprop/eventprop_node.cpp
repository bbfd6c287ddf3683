/*
 *  eventprop_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_node.h"

#include <algorithm>
#include <cmath>
#include <string>

// NEST public headers
#include "event_delivery_manager_impl.h"
#include "exceptions.h"
#include "kernel_manager.h"

namespace nestgrad
{

void
EventpropSchedule::get( Dictionary& d ) const
{
  d[ "trial_origin" ] = origin_ms;
  d[ "trial_duration" ] = duration_ms;
  d[ "trial_period" ] = period_ms;
  d[ "backward" ] = backward;
  d[ "delay_bound" ] = delay_bound_ms;
}

void
EventpropSchedule::set( const Dictionary& d )
{
  EventpropSchedule tmp = *this;
  d.update_value( "trial_origin", tmp.origin_ms );
  d.update_value( "trial_duration", tmp.duration_ms );
  d.update_value( "trial_period", tmp.period_ms );
  d.update_value( "backward", tmp.backward );
  d.update_value( "delay_bound", tmp.delay_bound_ms );
  if ( not( std::isfinite( tmp.delay_bound_ms ) and tmp.delay_bound_ms > 0.0 ) )
  {
    throw nest::BadProperty( "delay_bound = " + std::to_string( tmp.delay_bound_ms ) + " ms: must be finite and > 0." );
  }
  if ( not( std::isfinite( tmp.duration_ms ) and tmp.duration_ms > 0.0 ) )
  {
    throw nest::BadProperty( "trial_duration = " + std::to_string( tmp.duration_ms ) + " ms: must be finite and > 0." );
  }
  if ( not( tmp.period_ms >= tmp.duration_ms ) )
  {
    throw nest::BadProperty( "trial_period = " + std::to_string( tmp.period_ms )
      + " ms: must be >= trial_duration = " + std::to_string( tmp.duration_ms ) + " ms." );
  }
  if ( not( tmp.origin_ms >= 0.0 ) )
  {
    throw nest::BadProperty( "trial_origin = " + std::to_string( tmp.origin_ms ) + " ms: must be >= 0." );
  }
  *this = tmp;
}

void
EventpropSchedule::calibrate( const std::string& model )
{
  h = nest::Time::get_resolution().get_ms();
  const nest::Time origin = nest::Time::ms( origin_ms );
  const nest::Time period = nest::Time::ms( period_ms );
  if ( not origin.is_grid_time() or not period.is_grid_time() )
  {
    throw nest::BadProperty( model + ": trial_origin = " + std::to_string( origin_ms ) + " ms and trial_period = "
      + std::to_string( period_ms ) + " ms must be multiples of the resolution " + std::to_string( h ) + " ms." );
  }
  origin_steps = origin.get_steps();
  period_steps = period.get_steps();
  n_T = static_cast< long >( std::ceil( duration_ms / h ) );
  if ( n_T * h < duration_ms )
  {
    ++n_T;
  }
  long D = static_cast< long >( std::ceil( delay_bound_ms / h - 1e-9 ) );
  D = std::max( D, 1L );
  n_c = n_T + D + 2;
  n_B = n_c + D + 2;
  if ( backward and period_steps < n_B + n_T + D + 2 )
  {
    throw nest::BadProperty( model + ": with backward = true, trial_period = " + std::to_string( period_ms )
      + " ms must be at least " + std::to_string( ( n_B + n_T + D + 2 ) * h )
      + " ms (forward pass, loss exchange and backward pass of one trial, each followed by delay_bound)." );
  }
  if ( origin_steps < 1 )
  {
    throw nest::BadProperty( model + ": trial_origin = " + std::to_string( origin_ms )
      + " ms must be at least one step: a spike at trial time 0 is emitted in the step that ends at the origin." );
  }
}

size_t
EventpropNode::send_test_event( nest::Node& target, const size_t receptor_type, nest::synindex, bool )
{
  nest::SpikeEvent e;
  e.set_sender( *this );
  return target.handles_test_event( e, receptor_type );
}

size_t
EventpropNode::handles_test_event( nest::SpikeEvent&, const size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

void
EventpropNode::handle( nest::SpikeEvent& e )
{
  const long delivery = e.get_stamp().get_steps() + e.get_delay_steps();
  inbox_[ delivery ].push_back( { delivery, e.get_stamp().get_steps(), e.get_offset(), e.get_weight(), seq_++,
    static_cast< long >( e.get_rport() ) } );
}

std::vector< EventpropArrival >
EventpropNode::take_arrivals_( const long step )
{
  std::vector< EventpropArrival > out;
  auto it = inbox_.find( step );
  if ( it == inbox_.end() )
  {
    return out;
  }
  out.swap( it->second );
  inbox_.erase( it );
  // larger offset = earlier in the step; equal times keep their order of arrival
  std::stable_sort( out.begin(),
    out.end(),
    []( const EventpropArrival& a, const EventpropArrival& b ) { return a.offset > b.offset; } );
  return out;
}

void
EventpropNode::clear_inbox_()
{
  inbox_.clear();
  seq_ = 0;
}

void
EventpropNode::send_spike_( const long lag, const double offset )
{
  nest::SpikeEvent se;
  se.set_offset( offset );
  nest::kernel().event_delivery_manager.send( *this, se, lag );
}

void
EventpropNode::init_buffers_()
{
  clear_inbox_();
}

void
EventpropNode::pre_run_hook()
{
  schedule_.calibrate( get_name() );
}

void
EventpropNode::update_trials_( nest::Time const& origin, const long from, const long to )
{
  for ( long lag = from; lag < to; ++lag )
  {
    const long s = origin.get_steps() + lag;
    const std::vector< EventpropArrival > arrivals = take_arrivals_( s + 1 );
    long trial = 0;
    long within = 0;
    if ( not schedule_.locate( s, trial, within ) )
    {
      continue;
    }
    if ( within == 0 )
    {
      trial_ = trial;
      start_trial_();
    }
    if ( trial_ == trial )
    {
      trial_step_( lag, within, arrivals );
    }
  }
}

double
EventpropNode::adjoint_current_at( double ) const
{
  throw nest::KernelException( get_name() + " has no adjoint: eventprop_synapse cannot compute a gradient into it." );
}

void
EventpropNode::get_status( Dictionary& d ) const
{
  schedule_.get( d );
}

void
EventpropNode::set_status( const Dictionary& d )
{
  schedule_.set( d );
}

}  // namespace nestgrad
