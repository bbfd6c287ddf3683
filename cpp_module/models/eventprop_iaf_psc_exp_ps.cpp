/*
 *  eventprop_iaf_psc_exp_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_iaf_psc_exp_ps.h"

#include <cmath>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_iaf_psc_exp_ps( const std::string& name )
{
  nest::register_node_model< eventprop_iaf_psc_exp_ps >( name );
}

eventprop_iaf_psc_exp_ps::eventprop_iaf_psc_exp_ps()
{
  p_.theta = -55.0 - E_L_;
  p_.v_reset = -70.0 - E_L_;
}

void
eventprop_iaf_psc_exp_ps::get_status( Dictionary& d ) const
{
  EventpropSpikingNode::get_status( d );
  d[ nest::names::C_m ] = p_.C_m;
  d[ nest::names::tau_m ] = p_.tau_m;
  d[ "tau_syn" ] = p_.tau_syn;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::I_e ] = p_.I_e;
  d[ nest::names::V_th ] = p_.theta + E_L_;
  d[ nest::names::V_reset ] = p_.v_reset + E_L_;
  d[ nest::names::t_ref ] = p_.t_ref;
  d[ "adapt_tau" ] = p_.adapt_tau;
  d[ "adapt_beta" ] = p_.adapt_beta;
  d[ nest::names::V_m ] = v_ + E_L_;
  d[ "I_syn" ] = i_;
  d[ "adaptation" ] = a_;
  d[ "max_trial_gradient" ] = max_trial_gradient_;
}

void
eventprop_iaf_psc_exp_ps::set_status( const Dictionary& d )
{
  double E_L = E_L_;
  double V_th = p_.theta + E_L_;
  double V_reset = p_.v_reset + E_L_;
  EventpropNeuronParams p = p_;
  d.update_value( nest::names::E_L, E_L );
  d.update_value( nest::names::V_th, V_th );
  d.update_value( nest::names::V_reset, V_reset );
  d.update_value( nest::names::C_m, p.C_m );
  d.update_value( nest::names::tau_m, p.tau_m );
  d.update_value( "tau_syn", p.tau_syn );
  d.update_value( nest::names::I_e, p.I_e );
  d.update_value( nest::names::t_ref, p.t_ref );
  d.update_value( "adapt_tau", p.adapt_tau );
  d.update_value( "adapt_beta", p.adapt_beta );
  double max_trial_gradient = max_trial_gradient_;
  d.update_value( "max_trial_gradient", max_trial_gradient );
  if ( not( max_trial_gradient > 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": max_trial_gradient = " + std::to_string( max_trial_gradient )
      + " /pA must be > 0 (inf: no clipping)." );
  }
  const auto positive = [ this ]( const char* name, const double x )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( get_name() + ": " + name + " = " + std::to_string( x ) + " must be finite and > 0." );
    }
  };
  positive( "C_m", p.C_m );
  positive( "tau_m", p.tau_m );
  positive( "tau_syn", p.tau_syn );
  positive( "adapt_tau", p.adapt_tau );
  if ( not( V_reset < V_th ) )
  {
    throw nest::BadProperty( get_name() + ": V_reset = " + std::to_string( V_reset ) + " mV must be < V_th = "
      + std::to_string( V_th ) + " mV." );
  }
  if ( not( p.t_ref >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": t_ref = " + std::to_string( p.t_ref ) + " ms must be >= 0." );
  }
  if ( not( p.adapt_beta >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": adapt_beta = " + std::to_string( p.adapt_beta ) + " mV must be >= 0." );
  }
  p.theta = V_th - E_L;
  p.v_reset = V_reset - E_L;
  EventpropSpikingNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
  max_trial_gradient_ = max_trial_gradient;
}

void
eventprop_iaf_psc_exp_ps::pre_run_hook()
{
  EventpropNode::pre_run_hook();
  kmax_ = eventprop_kern_max( p_.tau_m, p_.tau_syn );
}

void
eventprop_iaf_psc_exp_ps::reset_trial_state_()
{
  v_ = 0.0;
  i_ = 0.0;
  a_ = 0.0;
  adj_.clear();
}

void
eventprop_iaf_psc_exp_ps::propagate_state_( const double u )
{
  eventprop_propagate( v_, i_, a_, u, p_, refractory_ );
}

double
eventprop_iaf_psc_exp_ps::first_crossing_( const double horizon ) const
{
  return eventprop_first_crossing( v_, i_, a_, horizon, p_, kmax_ );
}

double
eventprop_iaf_psc_exp_ps::threshold_slope_() const
{
  return eventprop_dvdt( v_, i_, p_ ) + a_ / p_.adapt_tau;
}

double
eventprop_iaf_psc_exp_ps::voltage_slope_() const
{
  return eventprop_dvdt( v_, i_, p_ );
}

double
eventprop_iaf_psc_exp_ps::refractory_period_() const
{
  return p_.t_ref;
}

void
eventprop_iaf_psc_exp_ps::reset_at_spike_()
{
  v_ = p_.v_reset;
  a_ += p_.adapt_beta;
}

void
eventprop_iaf_psc_exp_ps::apply_arrival_( const EventpropArrival& a )
{
  i_ += a.weight;
}

void
eventprop_iaf_psc_exp_ps::send_mirror_constants_( const long lag )
{
  send_spike_( lag, p_.tau_m );
  send_spike_( lag, p_.tau_syn );
  send_spike_( lag, p_.C_m );
}

double
eventprop_iaf_psc_exp_ps::default_first_spike_tau_s_() const
{
  return p_.tau_syn;
}

void
eventprop_iaf_psc_exp_ps::start_adjoint_()
{
  adj_.clear();
  adj_.push_back( { schedule_.duration_ms, 0.0, 0.0, 0.0 } );
}

double
eventprop_iaf_psc_exp_ps::adjoint_event_( const double t, const bool release, const size_t k )
{
  AdjointEntry e = adj_.back();
  const double u = e.t - t;
  if ( u > 0.0 )
  {
    eventprop_adjoint_propagate( e.lv, e.li, e.la, u, p_ );
  }
  e.t = t;
  EventpropTrialSpike& sp = tspk_[ k ];
  if ( release )
  {
    sp.R = -e.lv * sp.release_vdot;
    e.lv = 0.0;
  }
  else
  {
    const double b = -e.lv * sp.vdot_plus + e.la * p_.adapt_beta / p_.adapt_tau + sp.J + sp.R + sp.G;
    e.lv = -b / sp.gdot;
    e.la = e.la + b / sp.gdot;
  }
  adj_.push_back( e );
  return e.lv;
}

bool
eventprop_iaf_psc_exp_ps::alpha_targets_() const
{
  return false;
}

double
eventprop_iaf_psc_exp_ps::adjoint_current_at( const double t ) const
{
  const AdjointEntry* after = eventprop_entry_after( adj_, t );
  if ( after == nullptr )
  {
    return 0.0;  // t >= T
  }
  AdjointEntry e = *after;
  const double u = e.t - t;
  if ( u > 0.0 )
  {
    eventprop_adjoint_propagate( e.lv, e.li, e.la, u, p_ );
  }
  return e.li;
}

}  // namespace nestgrad
