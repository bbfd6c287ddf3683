/*
 *  eventprop_math.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_math.h"

#include <algorithm>

namespace nestgrad
{

namespace
{
constexpr double RATE_RTOL = 1e-12;
constexpr double ZERO_RATE = 1e-13;

//! The polynomial with ascending coefficients c at u (Horner's scheme).
double
horner( const EventpropCoeffs& c, const double u )
{
  double s = 0.0;
  for ( auto it = c.rbegin(); it != c.rend(); ++it )
  {
    s = s * u + *it;
  }
  return s;
}

//! Appends one bracketed root of f for every interval between consecutive points of pts (ascending, pts.back() = hi)
//! on which f changes sign; a root exactly at hi is left out (it belongs to the interval that starts there).
template < typename F, typename DF >
void
append_bracketed_roots( const EventpropPoints& pts, const F& f, const DF& df, EventpropPoints& out )
{
  const double hi = pts.back();
  for ( size_t k = 0; k + 1 < pts.size(); ++k )
  {
    const double a = pts[ k ];
    const double b = pts[ k + 1 ];
    const double fa = f( a );
    const double fb = f( b );
    if ( ( fa < 0.0 and 0.0 <= fb ) or ( fa > 0.0 and 0.0 >= fb ) )
    {
      if ( fb == 0.0 and b == hi )
      {
        continue;
      }
      out.push_back( eventprop_bracketed_root( f, a, b, df ) );
    }
  }
}

//! Sign changes of the polynomial c (ascending coefficients) in (lo, hi): critical points from the derivative,
//! recursively, then one bracketed root per monotone piece.
EventpropPoints
poly_roots( const EventpropCoeffs& c, const double lo, const double hi )
{
  EventpropPoints out;
  if ( c.size() < 2 or not( lo < hi ) )
  {
    return out;
  }
  auto f = [ &c ]( const double u ) { return horner( c, u ); };
  EventpropCoeffs dc( c.size() - 1 );
  for ( size_t k = 1; k < c.size(); ++k )
  {
    dc[ k - 1 ] = k * c[ k ];
  }
  auto df = [ &dc ]( const double u ) { return horner( dc, u ); };
  EventpropPoints pts { lo };
  for ( const double x : poly_roots( dc, lo, hi ) )
  {
    pts.push_back( x );
  }
  pts.push_back( hi );
  append_bracketed_roots( pts, f, df, out );
  return out;
}
}  // namespace

double
eventprop_kern_max( const double tau_a, const double tau_b )
{
  if ( tau_a == tau_b )
  {
    return tau_a / std::exp( 1.0 );
  }
  const double u_peak = std::log( tau_b / tau_a ) * tau_a * tau_b / ( tau_b - tau_a );
  return eventprop_kern( u_peak, tau_a, tau_b );
}

size_t
EventpropExpPoly::key_( const double rate ) const
{
  const double r = std::abs( rate ) <= ZERO_RATE ? 0.0 : rate;
  for ( size_t k = 0; k < terms.size(); ++k )
  {
    if ( terms[ k ].rate == r )
    {
      return k;
    }
  }
  for ( size_t k = 0; k < terms.size(); ++k )
  {
    const double key = terms[ k ].rate;
    if ( std::abs( key - r ) <= RATE_RTOL * std::max( { 1.0, std::abs( key ), std::abs( r ) } ) )
    {
      return k;
    }
  }
  return terms.size();
}

void
EventpropExpPoly::add_term( const double rate, const EventpropCoeffs& coeffs )
{
  const size_t k = key_( rate );
  if ( k == terms.size() )
  {
    terms.push_back( { std::abs( rate ) <= ZERO_RATE ? 0.0 : rate, coeffs } );
    return;
  }
  auto& old = terms[ k ].coeffs;
  if ( coeffs.size() > old.size() )
  {
    old.resize( coeffs.size(), 0.0 );
  }
  for ( size_t j = 0; j < coeffs.size(); ++j )
  {
    old[ j ] += coeffs[ j ];
  }
}

EventpropExpPoly
EventpropExpPoly::exp( const double rate, const double c, const int power )
{
  EventpropExpPoly out;
  EventpropCoeffs coeffs( power + 1, 0.0 );
  coeffs[ power ] = c;
  out.add_term( rate, coeffs );
  return out;
}

EventpropExpPoly
EventpropExpPoly::plus( const EventpropExpPoly& other ) const
{
  EventpropExpPoly out = *this;
  for ( const auto& t : other.terms )
  {
    out.add_term( t.rate, t.coeffs );
  }
  return out;
}

EventpropExpPoly
EventpropExpPoly::times_exp( const double k ) const
{
  EventpropExpPoly out;
  for ( const auto& t : terms )
  {
    out.add_term( t.rate - k, t.coeffs );
  }
  return out;
}

EventpropExpPoly
EventpropExpPoly::deriv() const
{
  EventpropExpPoly out;
  for ( const auto& t : terms )
  {
    EventpropCoeffs q( t.coeffs.size() );
    for ( size_t j = 0; j < t.coeffs.size(); ++j )
    {
      q[ j ] = -t.rate * t.coeffs[ j ];
    }
    for ( size_t j = 1; j < t.coeffs.size(); ++j )
    {
      q[ j - 1 ] += j * t.coeffs[ j ];
    }
    out.add_term( t.rate, q );
  }
  return out;
}

EventpropExpPoly
EventpropExpPoly::antideriv() const
{
  EventpropExpPoly out;
  for ( const auto& t : terms )
  {
    if ( t.rate == 0.0 )
    {
      EventpropCoeffs q( t.coeffs.size() + 1, 0.0 );
      for ( size_t k = 0; k < t.coeffs.size(); ++k )
      {
        q[ k + 1 ] = t.coeffs[ k ] / static_cast< double >( k + 1 );
      }
      out.add_term( 0.0, q );
      continue;
    }
    // q' - r q = p  =>  q = -sum_j p^(j) / r^(j+1)
    EventpropCoeffs q( t.coeffs.size(), 0.0 );
    EventpropCoeffs d = t.coeffs;
    double rj = t.rate;
    while ( not d.empty() )
    {
      for ( size_t k = 0; k < d.size(); ++k )
      {
        q[ k ] -= d[ k ] / rj;
      }
      EventpropCoeffs next;
      for ( size_t k = 1; k < d.size(); ++k )
      {
        next.push_back( static_cast< double >( k ) * d[ k ] );
      }
      d.swap( next );
      rj *= t.rate;
    }
    out.add_term( t.rate, q );
  }
  return out;
}

EventpropExpPoly
EventpropExpPoly::trimmed() const
{
  EventpropExpPoly out;
  for ( const auto& t : terms )
  {
    long last = -1;
    for ( size_t j = 0; j < t.coeffs.size(); ++j )
    {
      if ( t.coeffs[ j ] != 0.0 )
      {
        last = static_cast< long >( j );
      }
    }
    if ( last >= 0 )
    {
      out.terms.push_back( { t.rate, EventpropCoeffs( t.coeffs.begin(), t.coeffs.begin() + last + 1 ) } );
    }
  }
  return out;
}

double
EventpropExpPoly::operator()( const double u ) const
{
  double total = 0.0;
  for ( const auto& t : terms )
  {
    double poly = 0.0;
    for ( auto it = t.coeffs.rbegin(); it != t.coeffs.rend(); ++it )
    {
      poly = poly * u + *it;
    }
    total += poly * std::exp( -t.rate * u );
  }
  return total;
}

EventpropPoints
EventpropExpPoly::roots( const double lo, const double hi ) const
{
  const EventpropExpPoly f = trimmed();
  EventpropPoints out;
  if ( f.terms.empty() or hi <= lo )
  {
    return out;
  }
  if ( f.terms.size() == 1 )
  {
    // exp(-r u) > 0 does not move the roots of the polynomial factor
    return poly_roots( f.terms[ 0 ].coeffs, lo, hi );
  }
  double r0 = f.terms[ 0 ].rate;
  for ( const auto& t : f.terms )
  {
    r0 = std::min( r0, t.rate );
  }
  const EventpropPoints crit = f.times_exp( r0 ).deriv().roots( lo, hi );
  EventpropPoints pts { lo };
  pts.insert( pts.end(), crit.begin(), crit.end() );
  pts.push_back( hi );
  const EventpropExpPoly df = f.deriv();
  append_bracketed_roots( pts, f, df, out );
  return out;
}

EventpropExpPoly
eventprop_voltage_expsum( const double v, const double i, const EventpropNeuronParams& p )
{
  const double tm = p.tau_m;
  const double ts = p.tau_syn;
  const double v_inf = p.v_inf();
  const double rm = 1.0 / tm;
  const double rs = 1.0 / ts;
  EventpropExpPoly expr;
  expr.add_term( 0.0, { v_inf } );
  if ( tm == ts )
  {
    expr = expr.plus( EventpropExpPoly::exp( rm, v - v_inf ) ).plus( EventpropExpPoly::exp( rm, i / p.C_m, 1 ) );
  }
  else
  {
    const double k = tm * ts / ( ts - tm ) * i / p.C_m;
    expr = expr.plus( EventpropExpPoly::exp( rm, v - v_inf - k ) ).plus( EventpropExpPoly::exp( rs, k ) );
  }
  return expr;
}

double
eventprop_first_crossing( const double v,
  const double i,
  const double a,
  const double horizon,
  const EventpropNeuronParams& p,
  const double kmax )
{
  const double theta = p.theta;
  const double v_inf = p.v_inf();
  const double bound = std::max( v, v_inf ) + std::max( i, 0.0 ) * kmax / p.C_m;
  if ( bound < theta + std::min( a, 0.0 ) or horizon <= 0.0 )
  {
    return -1.0;
  }
  const double tm = p.tau_m;
  const double ts = p.tau_syn;
  const double ta = p.adapt_tau;
  const double c_m = p.C_m;
  auto g = [ & ]( const double u )
  {
    const double vv = v_inf + ( v - v_inf ) * std::exp( -u / tm ) + i * eventprop_kern( u, tm, ts ) / c_m;
    return vv - ( a != 0.0 ? a * std::exp( -u / ta ) : 0.0 ) - theta;
  };
  auto dg = [ & ]( const double u )
  {
    const double vv = v_inf + ( v - v_inf ) * std::exp( -u / tm ) + i * eventprop_kern( u, tm, ts ) / c_m;
    const double d = ( v_inf - vv ) / tm + i * std::exp( -u / ts ) / c_m;
    return d + ( a != 0.0 ? a / ta * std::exp( -u / ta ) : 0.0 );
  };
  if ( g( 0.0 ) >= 0.0 )
  {
    return 0.0;
  }
  EventpropPoints crit;
  if ( a == 0.0 )
  {
    if ( tm == ts )
    {
      const double cm = v - v_inf;
      const double cs = i / c_m;
      if ( cs != 0.0 )
      {
        crit.push_back( tm - cm / cs );
      }
    }
    else
    {
      const double cs = tm * ts / ( ts - tm ) * i / c_m;
      const double cm = v - v_inf - cs;
      if ( cm != 0.0 )
      {
        const double ratio = -( cs * tm ) / ( cm * ts );
        if ( ratio > 0.0 )
        {
          crit.push_back( std::log( ratio ) / ( 1.0 / ts - 1.0 / tm ) );
        }
      }
    }
    crit.erase(
      std::remove_if(
        crit.begin(), crit.end(), [ horizon ]( const double c ) { return not( 0.0 < c and c < horizon ); } ),
      crit.end() );
  }
  else
  {
    // voltage_expsum(v, i) - theta - a exp(-u / adapt_tau), in the reference's order of terms
    EventpropExpPoly expr = eventprop_voltage_expsum( v, i, p );
    expr.add_term( 0.0, { -theta } );
    expr = expr.plus( EventpropExpPoly::exp( 1.0 / ta, -a ) );
    crit = expr.deriv().roots( 0.0, horizon );
  }
  return eventprop_first_root_on_pieces( g, dg, crit, horizon );
}

}  // namespace nestgrad
