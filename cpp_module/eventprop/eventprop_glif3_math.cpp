/*
 *  eventprop_glif3_math.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_glif3_math.h"

#include <algorithm>
#include <limits>

namespace nestgrad
{

double
eventprop_glif3_phi( const double x )
{
  if ( x < 0.1 )
  {
    // series: sum_n (-x)^n / (n! (n + 2))
    double total = 0.0;
    double term = 1.0;
    long n = 0;
    while ( true )
    {
      const double add = term / static_cast< double >( n + 2 );
      total += add;
      if ( std::abs( add ) <= 1e-17 * std::abs( total ) )
      {
        return total;
      }
      ++n;
      term *= -x / static_cast< double >( n );
    }
  }
  return ( -std::expm1( -x ) - x * std::exp( -x ) ) / ( x * x );
}

EventpropGlif3Step::EventpropGlif3Step( const double u_, const EventpropGlif3Params& p, const bool refractory_ )
  : u( u_ )
  , refractory( refractory_ )
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  const double tm = p.tau_m;
  decay_r.resize( nr );
  for ( size_t r = 0; r < nr; ++r )
  {
    decay_r[ r ] = std::exp( -u / p.tau_syn[ r ] );
  }
  if ( not refractory )
  {
    decay_m = std::exp( -u / tm );
    decay_a.resize( na );
    kern_a.resize( na );
    for ( size_t j = 0; j < na; ++j )
    {
      const double k = p.asc_decay[ j ];
      const double inv_k = 1.0 / k;
      // exp(-u / (1 / k)) is not always the double exp(-k u): computed apart when K1 needs it
      kern_a[ j ] = tm >= inv_k ? eventprop_glif3_k1_given( u, tm, inv_k, decay_m, 0.0 )
                                : eventprop_glif3_k1( u, tm, inv_k );
      decay_a[ j ] = std::exp( -k * u );
    }
    kern1_r.resize( nr );
    kern2_r.resize( nr );
    for ( size_t r = 0; r < nr; ++r )
    {
      kern1_r[ r ] = eventprop_glif3_k1_given( u, tm, p.tau_syn[ r ], decay_m, decay_r[ r ] );
      kern2_r[ r ] = eventprop_glif3_k2_given( u, tm, p.tau_syn[ r ], decay_m, decay_r[ r ] );
    }
  }
}

void
EventpropGlif3Step::apply( double* s, const EventpropGlif3Params& p ) const
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  const double v = s[ 0 ];
  const double cm = p.C_m;
  double vn = v;
  if ( not refractory )
  {
    const double v_inf = p.v_inf();
    vn = v_inf + ( v - v_inf ) * decay_m;
    for ( size_t j = 0; j < na; ++j )
    {
      const double a = s[ 1 + j ];
      vn += a * kern_a[ j ] / cm;
      s[ 1 + j ] = a * decay_a[ j ];
    }
    for ( size_t r = 0; r < nr; ++r )
    {
      const double i = s[ 1 + na + nr + r ];
      const double x = s[ 1 + na + r ];
      vn += ( i * kern1_r[ r ] + x * kern2_r[ r ] ) / cm;
    }
  }
  for ( size_t r = 0; r < nr; ++r )
  {
    const double e = decay_r[ r ];
    const double x = s[ 1 + na + r ];
    const double i = s[ 1 + na + nr + r ];
    s[ 1 + na + r ] = x * e;
    s[ 1 + na + nr + r ] = ( i + x * u ) * e;
  }
  s[ 0 ] = vn;
}

void
eventprop_glif3_propagate( double* s, const double u, const EventpropGlif3Params& p, const bool refractory )
{
  EventpropGlif3Step( u, p, refractory ).apply( s, p );
}

double
eventprop_glif3_dvdt( const double* s, const EventpropGlif3Params& p )
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  double sum_a = 0.0;
  for ( size_t j = 0; j < na; ++j )
  {
    sum_a += s[ 1 + j ];
  }
  double sum_i = 0.0;
  for ( size_t r = 0; r < nr; ++r )
  {
    sum_i += s[ 1 + na + nr + r ];
  }
  const double total = p.I_e + sum_a + sum_i;
  return -s[ 0 ] / p.tau_m + total / p.C_m;
}

void
eventprop_glif3_adjoint_propagate( std::vector< double >& lam,
  const double u,
  const EventpropGlif3Params& p,
  const bool refractory )
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  const double lv = lam[ 0 ];
  const double tm = p.tau_m;
  const double cm = p.C_m;
  if ( not refractory )
  {
    lam[ 0 ] = lv * std::exp( -u / tm );
    for ( size_t j = 0; j < na; ++j )
    {
      const double k = p.asc_decay[ j ];
      lam[ 1 + j ] = lam[ 1 + j ] * std::exp( -k * u ) + lv * eventprop_glif3_k1( u, tm, 1.0 / k ) / cm;
    }
  }
  for ( size_t r = 0; r < nr; ++r )
  {
    eventprop_glif3_port_adjoint(
      lam[ 1 + na + r ], lam[ 1 + na + nr + r ], lv, u, tm, p.tau_syn[ r ], cm, refractory );
  }
}

double
eventprop_glif3_upper_bound( const double* s, const EventpropGlif3Params& p, const double horizon )
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  const double tm = p.tau_m;
  const double cm = p.C_m;
  // the kernels' maxima depend on the parameters only: finish() keeps them, as it keeps rho
  double bound = std::max( s[ 0 ], p.v_inf() );
  for ( size_t j = 0; j < na; ++j )
  {
    bound += std::max( s[ 1 + j ], 0.0 ) * std::min( p.kmax_asc[ j ], horizon ) / cm;
  }
  for ( size_t r = 0; r < nr; ++r )
  {
    const double tau = p.tau_syn[ r ];
    const double x = s[ 1 + na + r ];
    const double i = s[ 1 + na + nr + r ];
    const double k1_max = std::min( p.kmax_syn[ r ], horizon );
    const double k2_max = std::min( tm * tau / M_E, 0.5 * horizon * horizon );  // max s exp(-s/tau) int exp(-r/tm) dr
    bound += ( std::max( i, 0.0 ) * k1_max + std::max( x, 0.0 ) * k2_max ) / cm;
  }
  return bound;
}

EventpropExpPoly
eventprop_glif3_voltage_expsum( const std::vector< double >& s, const EventpropGlif3Params& p )
{
  const size_t na = p.n_asc();
  const size_t nr = p.n_ports();
  const double rm = 1.0 / p.tau_m;
  EventpropExpPoly drive;
  drive.add_term( 0.0, { p.I_e / p.C_m } );
  for ( size_t j = 0; j < na; ++j )
  {
    drive.add_term( p.asc_decay[ j ], { s[ 1 + j ] / p.C_m } );
  }
  for ( size_t r = 0; r < nr; ++r )
  {
    drive.add_term( 1.0 / p.tau_syn[ r ], { s[ 1 + na + nr + r ] / p.C_m, s[ 1 + na + r ] / p.C_m } );
  }
  EventpropExpPoly q = drive.times_exp( rm ).antideriv();
  q.add_term( 0.0, { s[ 0 ] - q( 0.0 ) } );
  return q.times_exp( -rm );
}

namespace
{
//! True if the upper bound proves v < theta on each of `pieces` equal parts of [0, horizon].
bool
below_on_pieces( const std::vector< double >& s, const double horizon, const EventpropGlif3Params& p )
{
  const int pieces = 8;
  const double length = horizon / pieces;
  const EventpropGlif3Step step( length, p, false );  // each piece's start from the last one's: one set of exps
  EventpropGlif3State part( s.begin(), s.end() );
  for ( int k = 0; k < pieces; ++k )
  {
    if ( k > 0 )
    {
      step.apply( part.data(), p );
    }
    if ( eventprop_glif3_upper_bound( part.data(), p, length ) >= p.theta )
    {
      return false;
    }
  }
  return true;
}
}  // namespace

double
eventprop_glif3_first_crossing( const std::vector< double >& s, const double horizon, const EventpropGlif3Params& p )
{
  const double theta = p.theta;
  if ( horizon <= 0.0 or eventprop_glif3_upper_bound( s.data(), p, horizon ) < theta )
  {
    return -1.0;
  }
  if ( s[ 0 ] >= theta )
  {
    return 0.0;
  }
  if ( below_on_pieces( s, horizon, p ) )
  {
    return -1.0;
  }
  // the root search asks for v and dv/dt at the same u in turn: the state at the last u is kept for both
  EventpropGlif3State work( s.size() );
  double work_u = std::numeric_limits< double >::quiet_NaN();
  auto state_at = [ & ]( const double u )
  {
    if ( u != work_u )
    {
      std::copy( s.begin(), s.end(), work.begin() );
      eventprop_glif3_propagate( work.data(), u, p, false );
      work_u = u;
    }
    return work.data();
  };
  auto g = [ & ]( const double u ) { return state_at( u )[ 0 ] - theta; };
  auto dg = [ & ]( const double u ) { return eventprop_glif3_dvdt( state_at( u ), p ); };
  const EventpropPoints crit = eventprop_glif3_voltage_expsum( s, p ).deriv().roots( 0.0, horizon );
  return eventprop_first_root_on_pieces( g, dg, crit, horizon );
}

}  // namespace nestgrad
