/*
 *  eventprop_readout_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_readout_ps.h"

#include <cmath>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_readout_ps( const std::string& name )
{
  nest::register_node_model< eventprop_readout_ps >( name );
}

void
eventprop_readout_ps::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  d[ nest::names::C_m ] = p_.C_m;
  d[ nest::names::tau_m ] = p_.tau_m;
  d[ "tau_syn" ] = p_.tau_syn;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::I_e ] = p_.I_e;
  d[ nest::names::V_m ] = v_ + E_L_;
  d[ "I_syn" ] = i_;
  d[ "seg_trials" ] = seg_trial_;
  d[ "seg_times" ] = seg_t_;
  d[ "seg_v" ] = seg_v_;
  d[ "seg_I" ] = seg_i_;
}

void
eventprop_readout_ps::set_status( const Dictionary& d )
{
  double E_L = E_L_;
  EventpropNeuronParams p = p_;
  d.update_value( nest::names::E_L, E_L );
  d.update_value( nest::names::C_m, p.C_m );
  d.update_value( nest::names::tau_m, p.tau_m );
  d.update_value( "tau_syn", p.tau_syn );
  d.update_value( nest::names::I_e, p.I_e );
  for ( const auto& [ name, x ] : { std::pair( "C_m", p.C_m ), std::pair( "tau_m", p.tau_m ), std::pair( "tau_syn", p.tau_syn ) } )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( get_name() + ": " + name + " = " + std::to_string( x ) + " must be finite and > 0." );
    }
  }
  EventpropNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
}

void
eventprop_readout_ps::init_buffers_()
{
  clear_inbox_();
}

void
eventprop_readout_ps::pre_run_hook()
{
  schedule_.calibrate( get_name() );
}

void
eventprop_readout_ps::update( nest::Time const& origin, const long from, const long to )
{
  const double h = schedule_.h;
  const double T = schedule_.duration_ms;
  for ( long lag = from; lag < to; ++lag )
  {
    const long s = origin.get_steps() + lag;
    std::vector< EventpropArrival > arrivals = take_arrivals_( s + 1 );
    long trial = 0;
    long within = 0;
    if ( not schedule_.locate( s, trial, within ) )
    {
      continue;
    }
    if ( within == 0 )
    {
      trial_ = trial;
      v_ = 0.0;
      i_ = 0.0;
      t_upd_ = 0.0;
    }
    if ( within * h >= T or trial_ != trial )
    {
      continue;
    }
    for ( const EventpropArrival& arr : arrivals )
    {
      const double t = local_time_( arr, trial );
      if ( t >= T )
      {
        continue;
      }
      double a = 0.0;
      const double u = t - t_upd_;
      if ( u > 0.0 )
      {
        eventprop_propagate( v_, i_, a, u, p_, false );
      }
      t_upd_ = t;
      i_ += arr.weight;
      seg_trial_.push_back( trial );
      seg_t_.push_back( t );
      seg_v_.push_back( v_ );
      seg_i_.push_back( i_ );
    }
  }
}

}  // namespace nestgrad
