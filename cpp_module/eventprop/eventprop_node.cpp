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
  ++pending_;
  inbox_[ static_cast< size_t >( delivery ) % inbox_.size() ].push_back( { delivery,
    e.get_stamp().get_steps(),
    e.get_offset(),
    e.get_weight(),
    seq_++,
    static_cast< long >( e.get_rport() ) } );
}

const std::vector< EventpropArrival >&
EventpropNode::take_arrivals_( const long step )
{
  arrivals_.clear();
  if ( pending_ == 0 )
  {
    return arrivals_;
  }
  arrivals_.swap( inbox_[ static_cast< size_t >( step ) % inbox_.size() ] );  // the slot keeps the old capacity
  pending_ -= arrivals_.size();
  size_t kept = 0;
  for ( size_t k = 0; k < arrivals_.size(); ++k )
  {
    const long due = arrivals_[ k ].delivery_step;
    if ( due > step )
    {
      throw nest::KernelException( get_name() + ": a spike for step " + std::to_string( due )
        + " was found among those of step " + std::to_string( step ) + " (inbox of " + std::to_string( inbox_.size() )
        + " steps too small for the delays)." );
    }
    if ( due == step )  // an earlier step's spikes are left over only if the node was not updated then (frozen)
    {
      arrivals_[ kept++ ] = arrivals_[ k ];
    }
  }
  arrivals_.resize( kept );
  // larger offset = earlier in the step; equal times keep their order of arrival. A few arrivals per step: a
  // stable insertion sort, as std::stable_sort allocates a buffer on every call; many (coarse grids, synchronous
  // input): std::stable_sort, which is O(n log n)
  if ( arrivals_.size() > 32 )
  {
    std::stable_sort( arrivals_.begin(),
      arrivals_.end(),
      []( const EventpropArrival& x, const EventpropArrival& y ) { return x.offset > y.offset; } );
    return arrivals_;
  }
  for ( size_t k = 1; k < arrivals_.size(); ++k )
  {
    const EventpropArrival a = arrivals_[ k ];
    size_t j = k;
    while ( j > 0 and arrivals_[ j - 1 ].offset < a.offset )
    {
      arrivals_[ j ] = arrivals_[ j - 1 ];
      --j;
    }
    arrivals_[ j ] = a;
  }
  return arrivals_;
}

void
EventpropNode::clear_inbox_()
{
  for ( auto& slot : inbox_ )
  {
    slot.clear();
  }
  pending_ = 0;
  seq_ = 0;
}

void
EventpropNode::size_inbox_()
{
  const size_t needed = static_cast< size_t >(
    nest::kernel().connection_manager.get_min_delay() + nest::kernel().connection_manager.get_max_delay() + 1 );
  if ( inbox_.size() >= needed )
  {
    return;
  }
  std::vector< std::vector< EventpropArrival > > ring( needed );
  for ( const auto& slot : inbox_ )  // a slot holds one step's arrivals in order: so does its new slot
  {
    for ( const EventpropArrival& a : slot )
    {
      ring[ static_cast< size_t >( a.delivery_step ) % needed ].push_back( a );
    }
  }
  inbox_.swap( ring );
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
  size_inbox_();
}

void
EventpropNode::update_trials_( nest::Time const& origin, const long from, const long to )
{
  for ( long lag = from; lag < to; ++lag )
  {
    const long s = origin.get_steps() + lag;
    const std::vector< EventpropArrival >& arrivals = take_arrivals_( s + 1 );
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
