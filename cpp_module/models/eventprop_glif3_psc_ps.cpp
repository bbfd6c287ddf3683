/*
 *  eventprop_glif3_psc_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_glif3_psc_ps.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_glif3_psc_ps( const std::string& name )
{
  nest::register_node_model< eventprop_glif3_psc_ps >( name );
}

namespace
{
std::string
list_string( const std::vector< double >& v )
{
  std::ostringstream out;
  out << "[";
  for ( size_t k = 0; k < v.size(); ++k )
  {
    out << ( k ? ", " : "" ) << v[ k ];
  }
  out << "]";
  return out.str();
}
}  // namespace

eventprop_glif3_psc_ps::eventprop_glif3_psc_ps()
{
  p_.theta = -51.68 - E_L_;
  p_.v_reset = -78.85 - E_L_;
  p_.finish();
}

size_t
eventprop_glif3_psc_ps::handles_test_event( nest::SpikeEvent&, const size_t receptor_type )
{
  // port 0: reverse and exchange connections of the backward pass (eventprop_synapse refuses it, see
  // check_forward_port); ports 1..R: the alpha currents
  if ( receptor_type > p_.n_ports() )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  if ( receptor_type > 0 )
  {
    has_connections_ = true;
  }
  return receptor_type;
}

void
eventprop_glif3_psc_ps::check_forward_port( const size_t receptor_type ) const
{
  if ( receptor_type < 1 or receptor_type > p_.n_ports() )
  {
    throw nest::IllegalConnection( get_name() + ": receptor_type " + std::to_string( receptor_type )
      + " is not a receptor port; forward connections use ports 1.." + std::to_string( p_.n_ports() )
      + " (one per tau_syn)." );
  }
}

void
eventprop_glif3_psc_ps::get_status( Dictionary& d ) const
{
  EventpropSpikingNode::get_status( d );
  d[ nest::names::C_m ] = p_.C_m;
  d[ nest::names::g ] = p_.g;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::V_th ] = p_.theta + E_L_;
  d[ nest::names::V_reset ] = p_.v_reset + E_L_;
  d[ nest::names::t_ref ] = p_.t_ref;
  d[ nest::names::I_e ] = p_.I_e;
  d[ nest::names::asc_init ] = asc_init_;
  d[ nest::names::asc_decay ] = p_.asc_decay;
  d[ nest::names::asc_amps ] = p_.asc_amps;
  d[ nest::names::asc_r ] = p_.asc_r;
  d[ nest::names::tau_syn ] = p_.tau_syn;
  d[ nest::names::tau_m ] = p_.tau_m;
  const size_t na = p_.n_asc();
  const size_t nr = p_.n_ports();
  if ( s_.size() == p_.size() )
  {
    d[ nest::names::V_m ] = s_[ 0 ] + E_L_;
    d[ nest::names::ASCurrents ] = std::vector< double >( s_.begin() + 1, s_.begin() + 1 + na );
    d[ "I_syn" ] = std::vector< double >( s_.begin() + 1 + na + nr, s_.end() );
  }
  else
  {
    d[ nest::names::V_m ] = E_L_;
    d[ nest::names::ASCurrents ] = asc_init_;
    d[ "I_syn" ] = std::vector< double >( nr, 0.0 );
  }
}

void
eventprop_glif3_psc_ps::set_status( const Dictionary& d )
{
  double E_L = E_L_;
  double V_th = p_.theta + E_L_;
  double V_reset = p_.v_reset + E_L_;
  EventpropGlif3Params p = p_;
  std::vector< double > asc_init = asc_init_;
  d.update_value( nest::names::E_L, E_L );
  d.update_value( nest::names::V_th, V_th );
  d.update_value( nest::names::V_reset, V_reset );
  d.update_value( nest::names::C_m, p.C_m );
  d.update_value( nest::names::g, p.g );
  d.update_value( nest::names::t_ref, p.t_ref );
  d.update_value( nest::names::I_e, p.I_e );
  d.update_value( nest::names::asc_init, asc_init );
  d.update_value( nest::names::asc_decay, p.asc_decay );
  d.update_value( nest::names::asc_amps, p.asc_amps );
  d.update_value( nest::names::asc_r, p.asc_r );
  d.update_value( nest::names::tau_syn, p.tau_syn );

  const std::string me = get_name() + ": ";
  const auto finite = [ &me ]( const char* name, const double x, const char* unit )
  {
    if ( not std::isfinite( x ) )
    {
      throw nest::BadProperty( me + name + " = " + std::to_string( x ) + unit + " must be finite." );
    }
  };
  const auto positive = [ &me ]( const char* name, const double x, const char* unit )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( me + name + " = " + std::to_string( x ) + unit + " must be finite and > 0." );
    }
  };
  positive( "C_m", p.C_m, " pF" );
  positive( "g", p.g, " nS" );
  finite( "E_L", E_L, " mV" );
  finite( "V_th", V_th, " mV" );
  finite( "V_reset", V_reset, " mV" );
  finite( "I_e", p.I_e, " pA" );
  if ( not( std::isfinite( p.t_ref ) and p.t_ref >= 0.0 ) )
  {
    throw nest::BadProperty( me + "t_ref = " + std::to_string( p.t_ref ) + " ms must be finite and >= 0." );
  }
  if ( not( V_reset < V_th ) )
  {
    throw nest::BadProperty(
      me + "V_reset = " + std::to_string( V_reset ) + " mV must be < V_th = " + std::to_string( V_th ) + " mV." );
  }
  const std::pair< const char*, const std::vector< double >* > asc[] = {
    { "asc_init", &asc_init }, { "asc_amps", &p.asc_amps }, { "asc_r", &p.asc_r }
  };
  for ( const auto& [ name, values ] : asc )
  {
    if ( values->size() != p.asc_decay.size() )
    {
      throw nest::BadProperty( me + name + " = " + list_string( *values ) + " has " + std::to_string( values->size() )
        + " entries but asc_decay = " + list_string( p.asc_decay ) + " has " + std::to_string( p.asc_decay.size() )
        + " (one per after-spike current)." );
    }
    for ( const double x : *values )
    {
      if ( not std::isfinite( x ) )
      {
        throw nest::BadProperty( me + name + " = " + list_string( *values ) + " must be finite." );
      }
    }
  }
  for ( const double k : p.asc_decay )
  {
    if ( not( std::isfinite( k ) and k > 0.0 ) )
    {
      throw nest::BadProperty( me + "asc_decay = " + list_string( p.asc_decay ) + " 1/ms: every entry must be > 0." );
    }
  }
  if ( p.tau_syn.empty() )
  {
    throw nest::BadProperty( me + "tau_syn = []: needs at least one entry (one per receptor port)." );
  }
  for ( const double tau : p.tau_syn )
  {
    if ( not( std::isfinite( tau ) and tau > 0.0 ) )
    {
      throw nest::BadProperty( me + "tau_syn = " + list_string( p.tau_syn ) + " ms: every entry must be > 0." );
    }
  }
  if ( p.tau_syn.size() < p_.tau_syn.size() and has_connections_ )
  {
    throw nest::BadProperty( me + "tau_syn = " + list_string( p.tau_syn ) + ": the neuron has connections on "
      + std::to_string( p_.tau_syn.size() ) + " ports, their number cannot shrink." );
  }
  p.theta = V_th - E_L;
  p.v_reset = V_reset - E_L;
  p.finish();
  EventpropSpikingNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
  asc_init_ = asc_init;
}

void
eventprop_glif3_psc_ps::reset_trial_state_()
{
  s_.assign( p_.size(), 0.0 );
  std::copy( asc_init_.begin(), asc_init_.end(), s_.begin() + 1 );
  asc_spk_.clear();
  adj_t_.clear();
  adj_refr_.clear();
  adj_lam_.clear();
}

void
eventprop_glif3_psc_ps::propagate_state_( const double u )
{
  eventprop_glif3_propagate( s_, u, p_, refractory_ );
}

double
eventprop_glif3_psc_ps::first_crossing_( const double horizon ) const
{
  return eventprop_glif3_first_crossing( s_, horizon, p_ );
}

double
eventprop_glif3_psc_ps::first_crossing_between_( const double u0, const double u1 ) const
{
  if ( u0 <= 0.0 )
  {
    return first_crossing_( u1 );
  }
  // search from the state at u0 (no crossing before it): its bounds are tighter than those over [0, u1]
  s_later_ = s_;
  eventprop_glif3_propagate( s_later_, u0, p_, false );
  const double u = eventprop_glif3_first_crossing( s_later_, u1 - u0, p_ );
  return u < 0.0 ? -1.0 : u0 + u;
}

double
eventprop_glif3_psc_ps::threshold_slope_() const
{
  return eventprop_glif3_dvdt( s_, p_ );
}

double
eventprop_glif3_psc_ps::voltage_slope_() const
{
  return eventprop_glif3_dvdt( s_, p_ );
}

double
eventprop_glif3_psc_ps::refractory_period_() const
{
  return p_.t_ref;
}

void
eventprop_glif3_psc_ps::reset_at_spike_()
{
  const size_t na = p_.n_asc();
  std::vector< double > a_minus( s_.begin() + 1, s_.begin() + 1 + na );
  std::vector< double > a_plus( na );
  for ( size_t j = 0; j < na; ++j )
  {
    a_plus[ j ] = p_.asc_amps[ j ] + p_.rho[ j ] * a_minus[ j ];
  }
  s_[ 0 ] = p_.v_reset;
  std::copy( a_plus.begin(), a_plus.end(), s_.begin() + 1 );
  asc_spk_.push_back( { std::move( a_minus ), std::move( a_plus ), {} } );
}

void
eventprop_glif3_psc_ps::note_release_()
{
  asc_spk_.back().release.assign( s_.begin() + 1, s_.begin() + 1 + p_.n_asc() );
}

bool
eventprop_glif3_psc_ps::takes_arrival_( const EventpropArrival& a ) const
{
  return a.rport >= 1 and a.rport <= static_cast< long >( p_.n_ports() );
}

void
eventprop_glif3_psc_ps::apply_arrival_( const EventpropArrival& a )
{
  const size_t r = static_cast< size_t >( a.rport - 1 );
  s_[ 1 + p_.n_asc() + r ] += a.weight * M_E / p_.tau_syn[ r ];
}

void
eventprop_glif3_psc_ps::send_mirror_constants_( const long lag )
{
  // -R marks alpha currents, the ports' time constants follow
  send_spike_( lag, p_.tau_m );
  send_spike_( lag, -static_cast< double >( p_.n_ports() ) );
  send_spike_( lag, p_.C_m );
  for ( const double tau : p_.tau_syn )
  {
    send_spike_( lag, tau );
  }
}

double
eventprop_glif3_psc_ps::default_first_spike_tau_s_() const
{
  return std::numeric_limits< double >::quiet_NaN();
}

void
eventprop_glif3_psc_ps::start_adjoint_()
{
  adj_t_.assign( 1, schedule_.duration_ms );
  adj_refr_.assign( 1, refractory_at_end_ );
  adj_lam_.assign( p_.size(), 0.0 );
}

double
eventprop_glif3_psc_ps::adjoint_event_( const double t, const bool release, const size_t k )
{
  const size_t na = p_.n_asc();
  const size_t n = p_.size();
  std::vector< double >& lam = lam_;
  lam.assign( adj_lam_.end() - n, adj_lam_.end() );
  bool refr = adj_refr_.back();
  const double u = adj_t_.back() - t;
  if ( u > 0.0 )
  {
    eventprop_glif3_adjoint_propagate( lam, u, p_, refr );
  }
  EventpropTrialSpike& sp = tspk_[ k ];
  const SpikeAsc& asc = asc_spk_[ k ];
  if ( release )
  {
    double rr = -lam[ 0 ] * sp.release_vdot;
    for ( size_t j = 0; j < na; ++j )
    {
      rr += lam[ 1 + j ] * p_.asc_decay[ j ] * asc.release[ j ];
    }
    sp.R = rr;
    lam[ 0 ] = 0.0;
    refr = true;  // going back, refractory until the spike
  }
  else
  {
    double b = sp.J + sp.R + sp.G - lam[ 0 ] * sp.vdot_plus;
    for ( size_t j = 0; j < na; ++j )
    {
      const double k_j = p_.asc_decay[ j ];
      const double adot_plus = p_.t_ref > 0.0 ? 0.0 : -k_j * asc.a_plus[ j ];
      b += lam[ 1 + j ] * ( -p_.rho[ j ] * k_j * asc.a_minus[ j ] - adot_plus );
    }
    lam[ 0 ] = -b / sp.gdot;
    for ( size_t j = 0; j < na; ++j )
    {
      lam[ 1 + j ] *= p_.rho[ j ];
    }
    refr = false;  // before the spike the neuron was free
  }
  adj_t_.push_back( t );
  adj_refr_.push_back( refr );
  adj_lam_.insert( adj_lam_.end(), lam.begin(), lam.end() );
  return lam[ 0 ];
}

bool
eventprop_glif3_psc_ps::alpha_targets_() const
{
  return true;
}

double
eventprop_glif3_psc_ps::adjoint_current_at( const double ) const
{
  throw nest::KernelException( get_name()
    + " has alpha-shaped synaptic currents: the weight gradient is lambda_x e / tau_r of the arrival's port "
      "(weight_gradient_at), not lambda_I." );
}

double
eventprop_glif3_psc_ps::weight_gradient_at( const double t, const long rport ) const
{
  const size_t na = p_.n_asc();
  if ( rport < 1 or static_cast< size_t >( rport ) > p_.n_ports() )
  {
    throw nest::KernelException(
      get_name() + ": weight gradient on receptor port " + std::to_string( rport ) + ", not a port of the neuron." );
  }
  const size_t r = static_cast< size_t >( rport - 1 );
  // the entry that follows t (the smallest entry time > t); none for t at or after the end of the trial
  const auto it = std::partition_point( adj_t_.begin(), adj_t_.end(), [ t ]( const double te ) { return te > t; } );
  if ( it == adj_t_.begin() )
  {
    return 0.0;
  }
  const size_t i = static_cast< size_t >( it - adj_t_.begin() ) - 1;
  const double* lam = adj_lam_.data() + i * p_.size();
  double lx = lam[ 1 + na + r ];
  double li = lam[ 1 + na + p_.n_ports() + r ];
  const double u = adj_t_[ i ] - t;
  if ( u > 0.0 )
  {
    // only this port: the same doubles as the full propagation (and as the reverse connection's mirror)
    eventprop_glif3_port_adjoint( lx, li, lam[ 0 ], u, p_.tau_m, p_.tau_syn[ r ], p_.C_m, adj_refr_[ i ] );
  }
  return lx * M_E / p_.tau_syn[ r ];
}

}  // namespace nestgrad
