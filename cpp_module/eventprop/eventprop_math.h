/*
 *  eventprop_math.h
 *
 *  This file is part of nestgrad.
 *
 *  Closed-form dynamics of the EventProp neurons (current-based LIF with one exponential synaptic current and
 *  optional threshold adaptation) and the exact first threshold crossing: a C++ port of the reference engine's
 *  python/nestgrad/reference/eventprop/neurons/dynamics.py and expsum.py (same formulas, same operation order, so
 *  that NEST's spike times equal the reference's to rounding).
 */

#ifndef NESTGRAD_EVENTPROP_MATH_H
#define NESTGRAD_EVENTPROP_MATH_H

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

namespace nestgrad
{

// Small vectors with inline storage: an exponential sum of a GLIF3 neuron has at most 9 terms of at most 3
// coefficients, and a search at most a few dozen points; heap vectors made malloc/free a third of the crossing search
using EventpropCoeffs = boost::container::small_vector< double, 4 >;
using EventpropPoints = boost::container::small_vector< double, 16 >;

//! Parameters of one EventProp neuron, relative to E_L (mV, ms, pF, pA), as NeuronParams of the reference.
struct EventpropNeuronParams
{
  double C_m = 250.0;
  double tau_m = 10.0;
  double tau_syn = 2.0;
  double I_e = 0.0;
  double theta = 15.0;    //!< V_th - E_L
  double v_reset = 0.0;   //!< V_reset - E_L
  double t_ref = 2.0;
  double adapt_tau = 100.0;
  double adapt_beta = 0.0;

  double
  v_inf() const
  {
    return I_e * tau_m / C_m;
  }
};

/**
 * Response at time u of x' = -x/tau_a + y, y' = -y/tau_b to x(0) = 0, y(0) = 1 (ms); symmetric in tau_a, tau_b and
 * accurate for close time constants (reference: dynamics.kern). eventprop_kern_given takes e_a = exp(-u / tau_a), for
 * callers that share it between kernels.
 */
inline double
eventprop_kern_given( const double u, const double tau_a, const double tau_b, const double e_a )
{
  if ( tau_a == tau_b )
  {
    return u * e_a;
  }
  const double d = ( tau_b - tau_a ) / ( tau_a * tau_b );
  return e_a * std::expm1( u * d ) / d;
}

inline double
eventprop_kern( const double u, const double tau_a, const double tau_b )
{
  return eventprop_kern_given( u, tau_a, tau_b, std::exp( -u / tau_a ) );
}

//! max over u >= 0 of eventprop_kern(u, tau_a, tau_b).
double eventprop_kern_max( double tau_a, double tau_b );

//! State (v, I, A) after u ms without input and without crossing (reference: dynamics.propagate).
inline void
eventprop_propagate( double& v,
  double& i,
  double& a,
  const double u,
  const EventpropNeuronParams& p,
  const bool refractory )
{
  const double i_new = i * std::exp( -u / p.tau_syn );
  const double a_new = a != 0.0 ? a * std::exp( -u / p.adapt_tau ) : 0.0;
  if ( not refractory )
  {
    const double v_inf = p.v_inf();
    v = v_inf + ( v - v_inf ) * std::exp( -u / p.tau_m ) + i * eventprop_kern( u, p.tau_m, p.tau_syn ) / p.C_m;
  }
  i = i_new;
  a = a_new;
}

//! int_0^length exp(-rate u) du (ms), without cancellation for small rate * length (reference: exp_integral).
inline double
eventprop_exp_integral( const double length, const double rate )
{
  if ( rate == 0.0 )
  {
    return length;
  }
  return -std::expm1( -rate * length ) / rate;
}

//! int_0^length exp(-rate u) kern(u; tau_a, tau_b) du (ms^2), rate >= 0, accurate for close time constants
//! (reference: kern_integral).
inline double
eventprop_kern_integral( const double length, const double tau_a, const double tau_b, const double rate = 0.0 )
{
  const double a = rate == 0.0 ? tau_a : 1.0 / ( 1.0 / tau_a + rate );
  const double b = rate == 0.0 ? tau_b : 1.0 / ( 1.0 / tau_b + rate );
  return b * ( -a * std::expm1( -length / a ) - eventprop_kern( length, a, b ) );
}

//! int_0^length exp(-rate u) v(u) du of the free dynamics from (v, i) (mV ms; reference: voltage_integral).
inline double
eventprop_voltage_integral( const double v,
  const double i,
  const double length,
  const EventpropNeuronParams& p,
  const double rate = 0.0 )
{
  const double v_inf = p.v_inf();
  return v_inf * eventprop_exp_integral( length, rate )
    + ( v - v_inf ) * eventprop_exp_integral( length, rate + 1.0 / p.tau_m )
    + i / p.C_m * eventprop_kern_integral( length, p.tau_m, p.tau_syn, rate );
}

//! Adjoint (lambda_v, lambda_I, lambda_A) u ms earlier, no event in between (reference: adjoint_propagate).
inline void
eventprop_adjoint_propagate( double& lv, double& li, double& la, const double u, const EventpropNeuronParams& p )
{
  li = li * std::exp( -u / p.tau_syn ) + lv * eventprop_kern( u, p.tau_m, p.tau_syn ) / p.C_m;
  lv = lv * std::exp( -u / p.tau_m );
  la = la != 0.0 ? la * std::exp( -u / p.adapt_tau ) : 0.0;
}

//! dv/dt of the free dynamics (mV/ms).
inline double
eventprop_dvdt( const double v, const double i, const EventpropNeuronParams& p )
{
  return ( p.v_inf() - v ) / p.tau_m + i / p.C_m;
}

/**
 * A finite sum of terms p(u) exp(-rate u) (rates in 1/ms), enough of the reference's ExpPoly to isolate the
 * threshold crossings of adaptive neurons by the same Rolle recursion.
 */
class EventpropExpPoly
{
public:
  struct Term
  {
    double rate;
    EventpropCoeffs coeffs;  //!< ascending powers of u
  };

  void add_term( double rate, const EventpropCoeffs& coeffs );
  static EventpropExpPoly exp( double rate, double c, int power = 0 );
  EventpropExpPoly plus( const EventpropExpPoly& other ) const;
  EventpropExpPoly times_exp( double k ) const;
  EventpropExpPoly deriv() const;
  //! F with F' = this, integration constant 0 in the representation (reference: ExpPoly.antideriv)
  EventpropExpPoly antideriv() const;
  EventpropExpPoly trimmed() const;
  double operator()( double u ) const;
  //! all sign changes in (lo, hi), sorted
  EventpropPoints roots( double lo, double hi ) const;

  boost::container::small_vector< Term, 12 > terms;

private:
  size_t key_( double rate ) const;  //!< index of the term with this rate (merged as the reference does) or size
};

/**
 * Root of f in [a, b] (f(a), f(b) of opposite sign or f(b) == 0) by Newton steps safeguarded by bisection
 * (reference: expsum.bracketed_root).
 */
template < typename F, typename DF >
double
eventprop_bracketed_root( F f, double a, double b, DF df )
{
  const double fa = f( a );
  const bool neg_left = fa < 0.0;
  double x = 0.5 * ( a + b );
  for ( int it = 0; it < 200; ++it )
  {
    const double fx = f( x );
    if ( fx == 0.0 )
    {
      return x;
    }
    if ( ( fx < 0.0 ) == neg_left )
    {
      a = x;
    }
    else
    {
      b = x;
    }
    const double d = df( x );
    double xn = ( d != 0.0 and std::isfinite( d ) ) ? x - fx / d : 0.5 * ( a + b );
    if ( not( a < xn and xn < b ) )
    {
      xn = 0.5 * ( a + b );
    }
    const double ulp_x = std::nextafter( std::max( std::abs( x ), 1e-300 ), std::numeric_limits< double >::infinity() )
      - std::max( std::abs( x ), 1e-300 );
    const double ulp_b = std::nextafter( std::max( std::abs( b ), 1e-300 ), std::numeric_limits< double >::infinity() )
      - std::max( std::abs( b ), 1e-300 );
    if ( std::abs( xn - x ) <= 4.0 * ulp_x or b - a <= 4.0 * ulp_b )
    {
      return xn;
    }
    x = xn;
  }
  return x;
}

/**
 * First root of g in (0, horizon] with g(0) < 0, given the zeros crit of g' in (0, horizon) in ascending order: g is
 * monotone between them, so the first piece whose right end has g >= 0 brackets the root (eventprop_bracketed_root);
 * -1 if there is none.
 */
template < typename G, typename DG >
double
eventprop_first_root_on_pieces( G g, DG dg, const EventpropPoints& crit, const double horizon )
{
  EventpropPoints pts { 0.0 };
  pts.insert( pts.end(), crit.begin(), crit.end() );
  pts.push_back( horizon );
  for ( size_t k = 0; k + 1 < pts.size(); ++k )
  {
    if ( g( pts[ k + 1 ] ) >= 0.0 )
    {
      return eventprop_bracketed_root( g, pts[ k ], pts[ k + 1 ], dg );
    }
  }
  return -1.0;
}

//! v(u) of the free dynamics from (v, i) at u = 0 as an exponential sum (reference: voltage_expsum).
EventpropExpPoly eventprop_voltage_expsum( double v, double i, const EventpropNeuronParams& p );

/**
 * Time u in (0, horizon) at which v(u) first reaches theta + A(u), or a negative value if none (reference:
 * dynamics.first_crossing; kmax = eventprop_kern_max(tau_m, tau_syn)).
 */
double eventprop_first_crossing( double v,
  double i,
  double a,
  double horizon,
  const EventpropNeuronParams& p,
  double kmax );

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_MATH_H
