/*
 *  eventprop_input_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_input_ps.h"

#include <algorithm>
#include <cmath>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_input_ps( const std::string& name )
{
  nest::register_node_model< eventprop_input_ps >( name );
}

void
eventprop_input_ps::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  d[ "spike_times" ] = spike_times_;
  d[ "spike_trials" ] = spike_trials_;
}

void
eventprop_input_ps::set_status( const Dictionary& d )
{
  std::vector< double > times = spike_times_;
  std::vector< long > trials = spike_trials_;
  const bool new_times = d.update_value( "spike_times", times );
  const bool new_trials = d.update_value( "spike_trials", trials );
  if ( new_times and not new_trials )
  {
    trials.assign( times.size(), 0 );
  }
  if ( times.size() != trials.size() )
  {
    throw nest::BadProperty( get_name() + ": spike_times has " + std::to_string( times.size() )
      + " entries but spike_trials has " + std::to_string( trials.size() ) + "; they must have the same length." );
  }
  EventpropNode::set_status( d );
  for ( size_t i = 0; i < times.size(); ++i )
  {
    if ( not( std::isfinite( times[ i ] ) and times[ i ] >= 0.0 and times[ i ] < schedule_.duration_ms ) )
    {
      throw nest::BadProperty( get_name() + ": spike_times[" + std::to_string( i ) + "] = "
        + std::to_string( times[ i ] ) + " ms must lie in [0, trial_duration = "
        + std::to_string( schedule_.duration_ms ) + ")." );
    }
    if ( trials[ i ] < 0 )
    {
      throw nest::BadProperty(
        get_name() + ": spike_trials[" + std::to_string( i ) + "] = " + std::to_string( trials[ i ] )
        + " must be >= 0." );
    }
  }
  spike_times_ = times;
  spike_trials_ = trials;
}

void
eventprop_input_ps::pre_run_hook()
{
  EventpropNode::pre_run_hook();
  const double h = schedule_.h;
  std::vector< std::pair< long, double > > order;  // (trial, time)
  for ( size_t i = 0; i < spike_times_.size(); ++i )
  {
    order.emplace_back( spike_trials_[ i ], spike_times_[ i ] );
  }
  std::stable_sort( order.begin(), order.end() );
  emissions_.clear();
  for ( const auto& [ trial, t ] : order )
  {
    // the spike counts at the end of step n (trial-local), t in ((n - 1) h, n h]
    long n = static_cast< long >( std::ceil( t / h ) );
    if ( n * h < t )
    {
      ++n;
    }
    if ( n > 0 and ( n - 1 ) * h >= t )
    {
      --n;
    }
    // t = 0 would count at the end of step 0, i.e. be sent in the step before the trial, where the backward
    // schedule's synapses drop it: send it in the trial's first step with offset h (time n h - offset = 0 exactly)
    n = std::max( n, 1L );
    emissions_.push_back( { schedule_.origin_steps + trial * schedule_.period_steps + n, n * h - t } );
    if ( schedule_.backward )
    {
      // replay in the backward pass at mirrored time s = T - t: the offsets carry the forward time t, then 0
      const double s = schedule_.duration_ms - t;
      long m = static_cast< long >( std::ceil( s / h ) );
      m = std::max( m, 1L );
      const long stamp = schedule_.origin_steps + trial * schedule_.period_steps + schedule_.n_B + m;
      emissions_.push_back( { stamp, t } );
      emissions_.push_back( { stamp, 0.0 } );  // the second value of a replay (an input has no adjoint)
    }
  }
  std::stable_sort(
    emissions_.begin(), emissions_.end(), []( const Emission& a, const Emission& b ) { return a.stamp < b.stamp; } );
  next_ = 0;
}

void
eventprop_input_ps::update( nest::Time const& origin, const long from, const long to )
{
  for ( long lag = from; lag < to; ++lag )
  {
    const long stamp = origin.get_steps() + lag + 1;
    long trial = 0;
    long within = 0;
    if ( schedule_.backward and schedule_.locate( stamp - 1, trial, within ) and within == schedule_.n_c )
    {
      send_spike_( lag, 0.0 );  // every trial: lets the outgoing synapses apply a pending optimizer step
    }
    if ( schedule_.backward and schedule_.locate( stamp - 1, trial, within )
      and within == schedule_.n_B + schedule_.n_T )
    {
      send_spike_( lag, 0.0 );  // end of the backward sweep: the outgoing synapses' trial gradients are complete
    }
    while ( next_ < emissions_.size() and emissions_[ next_ ].stamp < stamp )
    {
      ++next_;
    }
    while ( next_ < emissions_.size() and emissions_[ next_ ].stamp == stamp )
    {
      send_spike_( lag, emissions_[ next_ ].offset );
      ++next_;
    }
  }
}

}  // namespace nestgrad
