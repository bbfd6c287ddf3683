/*
 *  eventprop_readout_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_readout_ps.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

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
  // the records grow with every trial: reading them on every status call would cost O(trials) per call
  if ( status_records_ )
  {
    d[ "seg_trials" ] = seg_trial_;
    d[ "seg_times" ] = seg_t_;
    d[ "seg_v" ] = seg_v_;
    d[ "seg_I" ] = seg_i_;
  }
  d[ "status_records" ] = status_records_;
  d[ "readout_index" ] = readout_index_;
  d[ "labels" ] = labels_;
  d[ "trial_y" ] = y_rec_;
  d[ "trial_c" ] = c_rec_;
  d[ "loss" ] = std::string( max_mode_ ? "max" : ( rate_ > 0.0 ? "sum_exp" : "sum" ) );
  d[ "tau_w" ] = tau_w_;
  d[ "window_start" ] = window_start_;
  d[ "record" ] = record_;
}

double
eventprop_readout_ps::adjoint_current_at( const double t ) const
{
  const double T = schedule_.duration_ms;
  if ( max_mode_ )
  {
    // lambda_v jumps by c at t_max (going back) and is 0 after it; lambda_I is continuous
    return t < t_max_ ? c_ * eventprop_kern( t_max_ - t, p_.tau_m, p_.tau_syn ) / p_.C_m : 0.0;
  }
  // mean (rate 0) or exponentially weighted mean: forcing c / (T - t_w) exp(-t rate) on the window [t_w, T]
  double lv = 0.0;
  double li = 0.0;
  eventprop_readout_mean_adjoint( t, T, window_start_, c_, rate_, p_.tau_m, p_.tau_syn, p_.C_m, lv, li );
  return li;
}

void
eventprop_readout_ps::max_piece_( const double length, const bool last )
{
  // the reference's candidates in its order: the piece's start, the zeros of dv/dt inside, and the end of the last
  // piece; a start wins with the slope at the end of the previous piece (a kink if > 0)
  // with a response window [t_w, T]: pieces that end before it only pass on their end slope; in the piece that
  // opens it, t_w is the first candidate (never a kink)
  const double t_w = window_start_;
  const double lo = t_w > t_upd_ ? t_w - t_upd_ : 0.0;
  if ( t_upd_ < t_w and t_upd_ + length <= t_w )
  {
    end_piece_( length );
    return;
  }
  std::vector< double > cands { lo };
  const EventpropPoints roots = eventprop_voltage_expsum( v_, i_, p_ ).deriv().roots( lo, length );
  cands.insert( cands.end(), roots.begin(), roots.end() );
  if ( last )
  {
    cands.push_back( length );
  }
  for ( const double u : cands )
  {
    double val = v_;
    if ( u != 0.0 )
    {
      double vv = v_;
      double ii = i_;
      double aa = 0.0;
      eventprop_propagate( vv, ii, aa, u, p_, false );
      val = vv;
    }
    if ( val > best_v_ )
    {
      best_v_ = val;
      best_t_ = t_upd_ + u;
      best_left_ = ( u == 0.0 and n_pieces_ > 0 ) ? prev_end_slope_ : 0.0;
    }
  }
  end_piece_( length );
}

void
eventprop_readout_ps::end_piece_( const double length )
{
  // a copy of the state is advanced: v_ and i_ stay at the piece's start (the caller moves them on)
  double ve = v_;
  double ie = i_;
  double ae = 0.0;
  eventprop_propagate( ve, ie, ae, length, p_, false );
  prev_end_slope_ = eventprop_dvdt( ve, ie, p_ );
  ++n_pieces_;
}

void
eventprop_readout_ps::integrate_until_( const double t_end )
{
  // the part of the piece [t_upd_, t_end] inside the window [t_w, T], from the state (v_, i_) at t_upd_
  const double t_w = window_start_;
  if ( t_upd_ >= t_w )
  {
    integral_ += ( rate_ > 0.0 ? std::exp( -t_upd_ * rate_ ) : 1.0 )
      * eventprop_voltage_integral( v_, i_, t_end - t_upd_, p_, rate_ );
  }
  else if ( t_end > t_w )
  {
    double v = v_;
    double i = i_;
    double a = 0.0;
    eventprop_propagate( v, i, a, t_w - t_upd_, p_, false );
    integral_ += ( rate_ > 0.0 ? std::exp( -t_w * rate_ ) : 1.0 ) * eventprop_voltage_integral( v, i, t_end - t_w, p_, rate_ );
  }
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
  long readout_index = readout_index_;
  std::vector< long > labels = labels_;
  d.update_value( "readout_index", readout_index );
  d.update_value( "labels", labels );
  bool record = record_;
  d.update_value( "record", record );
  bool status_records = status_records_;
  d.update_value( "status_records", status_records );
  std::string loss = max_mode_ ? "max" : ( rate_ > 0.0 ? "sum_exp" : "sum" );
  d.update_value( "loss", loss );
  if ( loss != "sum" and loss != "max" and loss != "sum_exp" )
  {
    throw nest::BadProperty(
      get_name() + ": loss = \"" + loss + "\" is not one of \"sum\", \"max\", \"sum_exp\"." );
  }
  double tau_w = tau_w_;
  d.update_value( "tau_w", tau_w );
  double window_start = window_start_;
  d.update_value( "window_start", window_start );
  double duration = schedule_.duration_ms;
  d.update_value( "trial_duration", duration );
  if ( not( std::isfinite( window_start ) and window_start >= 0.0 and window_start < duration ) )
  {
    throw nest::BadProperty( get_name() + ": window_start = " + std::to_string( window_start )
      + " ms must be finite, >= 0 and < trial_duration = " + std::to_string( duration ) + " ms." );
  }
  if ( not( std::isfinite( tau_w ) and tau_w > 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": tau_w = " + std::to_string( tau_w ) + " ms must be finite and > 0." );
  }
  for ( const auto& [ name, x ] :
    { std::pair( "C_m", p.C_m ), std::pair( "tau_m", p.tau_m ), std::pair( "tau_syn", p.tau_syn ) } )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( get_name() + ": " + name + " = " + std::to_string( x ) + " must be finite and > 0." );
    }
  }
  EventpropNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
  readout_index_ = readout_index;
  labels_ = labels;
  max_mode_ = loss == "max";
  tau_w_ = tau_w;
  window_start_ = window_start;
  rate_ = loss == "sum_exp" ? 1.0 / tau_w : 0.0;
  record_ = record;
  status_records_ = status_records;
}

void
eventprop_readout_ps::update( nest::Time const& origin, const long from, const long to )
{
  update_trials_( origin, from, to );
}

void
eventprop_readout_ps::start_trial_()
{
  v_ = 0.0;
  i_ = 0.0;
  t_upd_ = 0.0;
  integral_ = 0.0;
  others_y_.clear();
  best_v_ = -std::numeric_limits< double >::infinity();
  best_t_ = 0.0;
  best_left_ = 0.0;
  prev_end_slope_ = 0.0;
  n_pieces_ = 0;
}

void
eventprop_readout_ps::trial_step_( const long lag, const long within, const std::vector< EventpropArrival >& arrivals )
{
  const double T = schedule_.duration_ms;
  for ( const EventpropArrival& arr : arrivals )
  {
    long arr_trial = 0;
    const EventpropPhase phase = schedule_.phase_of_stamp( arr.stamp, arr_trial );
    if ( arr_trial != trial_ )
    {
      continue;
    }
    if ( phase == EventpropPhase::y_exchange )
    {
      others_y_.push_back( arr.offset );
      continue;
    }
    if ( phase != EventpropPhase::forward )
    {
      continue;
    }
    const double t = local_time_( arr, trial_ );
    if ( t >= T )
    {
      continue;
    }
    double a = 0.0;
    const double u = t - t_upd_;
    if ( max_mode_ and schedule_.backward )
    {
      max_piece_( u, false );
    }
    if ( u > 0.0 )
    {
      integrate_until_( t );
      eventprop_propagate( v_, i_, a, u, p_, false );
    }
    t_upd_ = t;
    i_ += arr.weight;
    if ( record_ )
    {
      seg_trial_.push_back( trial_ );
      seg_t_.push_back( t );
      seg_v_.push_back( v_ );
      seg_i_.push_back( i_ );
    }
  }
  if ( not schedule_.backward or readout_index_ < 0 )
  {
    return;
  }
  if ( within == schedule_.n_T )
  {
    // every arrival before T has been processed: the last piece of the integral, then y to the other readouts
    if ( max_mode_ )
    {
      max_piece_( T - t_upd_, true );
      y_ = best_v_;
    }
    else
    {
      integrate_until_( T );
      y_ = integral_ / ( T - window_start_ );
    }
    send_spike_( lag, y_ );
  }
  else if ( within == schedule_.n_c )
  {
    if ( trial_ >= static_cast< long >( labels_.size() ) )
    {
      throw nest::KernelException( get_name() + " (readout_index " + std::to_string( readout_index_ )
        + "): no label for trial " + std::to_string( trial_ ) + "; labels has " + std::to_string( labels_.size() )
        + " entries." );
    }
    // c = softmax(y)_k - [k = label], summed in ascending order of value (independent of arrival order)
    std::vector< double > ys = others_y_;
    ys.push_back( y_ );
    std::sort( ys.begin(), ys.end() );
    const double y_max = ys.back();
    double z_sum = 0.0;
    for ( const double y : ys )
    {
      z_sum += std::exp( y - y_max );
    }
    const double logp = ( y_ - y_max ) - std::log( z_sum );
    c_ = std::exp( logp ) - ( labels_[ trial_ ] == readout_index_ ? 1.0 : 0.0 );
    y_trial_.push_back( trial_ );
    y_rec_.push_back( y_ );
    c_rec_.push_back( c_ );
    // c, then where the maximum is (NaN for the mean) and the kink term c dv/dt(t_max-) of the arrival there
    t_max_ = best_t_;
    const bool kink = max_mode_ and n_pieces_ > 0 and best_left_ > 0.0;
    send_spike_( lag, c_ );
    send_spike_( lag, max_mode_ ? t_max_ : std::numeric_limits< double >::quiet_NaN() );
    // third: the kink term of the maximum, or the window start of the means (0: the whole trial)
    send_spike_( lag, max_mode_ ? ( kink ? c_ * best_left_ : 0.0 ) : window_start_ );
    send_spike_( lag, rate_ );
    send_spike_( lag, p_.tau_m );
    send_spike_( lag, p_.tau_syn );
    send_spike_( lag, p_.C_m );
  }
}

}  // namespace nestgrad
