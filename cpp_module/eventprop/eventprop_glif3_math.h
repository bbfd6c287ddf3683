/*
 *  eventprop_glif3_math.h
 *
 *  This file is part of nestgrad.
 *
 *  Closed-form dynamics, adjoint and exact first threshold crossing of the EventProp GLIF3 neuron (NEST's glif_psc
 *  with after-spike currents and alpha-shaped synaptic currents per receptor port): a C++ port of the reference
 *  engine's python/nestgrad/reference/eventprop/neurons/glif3.py, same formulas and operation order.
 *
 *  A state is (v, A_1..A_J, x_1..x_R, I_1..I_R) with v = V_m - E_L (mV), A_j the after-spike currents (pA), x_r
 *  (pA/ms) and I_r (pA) the auxiliary state and the current of port r; an adjoint has the same layout.
 */

#ifndef NESTGRAD_EVENTPROP_GLIF3_MATH_H
#define NESTGRAD_EVENTPROP_GLIF3_MATH_H

#include <cmath>
#include <vector>

#include "eventprop_math.h"

namespace nestgrad
{

//! Parameters of one EventProp GLIF3 neuron, relative to E_L (pF, nS, mV, ms, pA, 1/ms), as the reference's
//! Glif3Params; call finish() after changing them.
struct EventpropGlif3Params
{
  double C_m = 58.72;
  double g = 9.43;
  double theta = 26.83;  //!< V_th - E_L
  double v_reset = 0.0;  //!< V_reset - E_L
  double t_ref = 3.75;
  double I_e = 0.0;
  std::vector< double > asc_decay { 0.003, 0.1 };
  std::vector< double > asc_amps { -9.18, -198.94 };
  std::vector< double > asc_r { 1.0, 1.0 };
  std::vector< double > tau_syn { 2.0 };
  // derived (finish())
  double tau_m = 58.72 / 9.43;
  std::vector< double > rho;  //!< asc_r_j exp(-asc_decay_j t_ref): the share of A_j a spike keeps
  //! the maxima of the kernels K1(tau_m, 1 / asc_decay_j) and K1(tau_m, tau_syn_r) (upper bounds of every search)
  std::vector< double > kmax_asc;
  std::vector< double > kmax_syn;

  void
  finish()
  {
    tau_m = C_m / g;
    rho.resize( asc_decay.size() );
    kmax_asc.resize( asc_decay.size() );
    for ( size_t j = 0; j < asc_decay.size(); ++j )
    {
      rho[ j ] = asc_r[ j ] * std::exp( -asc_decay[ j ] * t_ref );
      kmax_asc[ j ] = eventprop_kern_max( tau_m, 1.0 / asc_decay[ j ] );
    }
    kmax_syn.resize( tau_syn.size() );
    for ( size_t r = 0; r < tau_syn.size(); ++r )
    {
      kmax_syn[ r ] = eventprop_kern_max( tau_m, tau_syn[ r ] );
    }
  }
  double
  v_inf() const
  {
    return I_e / g;
  }
  size_t
  n_asc() const
  {
    return asc_decay.size();
  }
  size_t
  n_ports() const
  {
    return tau_syn.size();
  }
  size_t
  size() const
  {
    return 1 + n_asc() + 2 * n_ports();
  }
};

//! (1 - exp(-x) (1 + x)) / x^2 = int_0^1 s exp(-x s) ds for x >= 0 (reference: glif3._phi).
double eventprop_glif3_phi( double x );

//! K1(u; a, b) = int_0^u exp(-(u-s)/a) exp(-s/b) ds (ms), no overflow (reference: glif3.k1).
inline double
eventprop_glif3_k1( const double u, const double a, const double b )
{
  return a >= b ? eventprop_kern( u, a, b ) : eventprop_kern( u, b, a );
}

/**
 * K1 with ea = exp(-u / a) and eb = exp(-u / b) given (only the slower constant's is read): the same doubles as
 * eventprop_glif3_k1, for a step that shares exp(-u / tau_m) among all its kernels.
 */
inline double
eventprop_glif3_k1_given( const double u, const double a, const double b, const double ea, const double eb )
{
  return a >= b ? eventprop_kern_given( u, a, b, ea ) : eventprop_kern_given( u, b, a, eb );
}

/**
 * K2(u; a, b) = int_0^u exp(-(u-s)/a) s exp(-s/b) ds (ms^2), no overflow or cancellation (reference: glif3.k2), with
 * ea = exp(-u / a) and eb = exp(-u / b) given (one of them is read): the step and the port adjoint share them with
 * K1 and the decays.
 */
inline double
eventprop_glif3_k2_given( const double u, const double a, const double b, const double ea, const double eb )
{
  if ( u <= 0.0 )
  {
    return 0.0;
  }
  const double c = 1.0 / b - 1.0 / a;
  if ( c >= 0.0 )
  {
    return ea * u * u * eventprop_glif3_phi( c * u );
  }
  const double x = -c * u;
  return eb * u * u * ( -std::expm1( -x ) / x - eventprop_glif3_phi( x ) );
}

//! A state on the stack (1 + 2 after-spike currents + 2 x 4 ports = 11 entries for Billeh's cells): the searches
//! propagate copies of the state many times per arrival, and heap copies cost more than the arithmetic
using EventpropGlif3State = boost::container::small_vector< double, 16 >;

//! The free dynamics over u ms as factors (decays and kernels) that depend on u and the parameters only: applied
//! to a state, the same operations as eventprop_glif3_propagate, so that one step applied k times costs the exps
//! once (the bound on eight pieces of a search).
struct EventpropGlif3Step
{
  EventpropGlif3Step( double u, const EventpropGlif3Params& p, bool refractory );
  //! the state (p.size() entries at s) u ms later (reference: glif3.propagate)
  void apply( double* s, const EventpropGlif3Params& p ) const;

  double u;
  bool refractory;
  double decay_m = 1.0;                                  //!< exp(-u / tau_m)
  boost::container::small_vector< double, 4 > decay_a;   //!< exp(-asc_decay_j u)
  boost::container::small_vector< double, 4 > kern_a;    //!< K1(u; tau_m, 1 / asc_decay_j)
  boost::container::small_vector< double, 8 > decay_r;   //!< exp(-u / tau_syn_r)
  boost::container::small_vector< double, 8 > kern1_r;   //!< K1(u; tau_m, tau_syn_r)
  boost::container::small_vector< double, 8 > kern2_r;   //!< K2(u; tau_m, tau_syn_r)
};

//! State (p.size() entries at s) after u ms without arrivals and without reaching the threshold (reference:
//! glif3.propagate).
void eventprop_glif3_propagate( double* s, double u, const EventpropGlif3Params& p, bool refractory );

inline void
eventprop_glif3_propagate( std::vector< double >& s, const double u, const EventpropGlif3Params& p, const bool refr )
{
  eventprop_glif3_propagate( s.data(), u, p, refr );
}

//! dv/dt of the free dynamics (mV/ms; reference: glif3.dvdt).
double eventprop_glif3_dvdt( const double* s, const EventpropGlif3Params& p );

inline double
eventprop_glif3_dvdt( const std::vector< double >& s, const EventpropGlif3Params& p )
{
  return eventprop_glif3_dvdt( s.data(), p );
}

/**
 * The adjoint (lambda_x, lambda_I) of one port u ms earlier, driven by lambda_v (its value at the later time)
 * unless refractory: shared by the neuron's sweep and the mirror in eventprop_reverse_synapse, so that both
 * compute the same doubles.
 */
inline void
eventprop_glif3_port_adjoint( double& lx,
  double& li,
  const double lv,
  const double u,
  const double tau_m,
  const double tau,
  const double C_m,
  const bool refractory )
{
  const double e = std::exp( -u / tau );
  double drive_i = 0.0;
  double drive_x = 0.0;
  if ( not refractory and lv != 0.0 )
  {
    const double em = std::exp( -u / tau_m );
    drive_i = lv * eventprop_glif3_k1_given( u, tau_m, tau, em, e ) / C_m;
    drive_x = lv * eventprop_glif3_k2_given( u, tau_m, tau, em, e ) / C_m;
  }
  const double li_new = li * e + drive_i;
  lx = lx * e + li * u * e + drive_x;
  li = li_new;
}

/**
 * The adjoint (lambda_v, lambda_x, lambda_I) of one receptor port of a spiking target u > 0 ms earlier, with no event
 * of the target in between: alpha-shaped current (GLIF3, eventprop_glif3_port_adjoint) or exponential (lambda_x
 * unused; eventprop_adjoint_propagate without adaptation). The targets' own formulas and order, so that the sums
 * of a source neuron and the mirrors of eventprop_reverse_synapse compute the same doubles as the targets' sweeps.
 */
inline void
eventprop_target_port_adjoint( double& lv,
  double& lx,
  double& li,
  const double u,
  const double tau_m,
  const double tau_syn,
  const double C_m,
  const bool alpha )
{
  if ( alpha )
  {
    eventprop_glif3_port_adjoint( lx, li, lv, u, tau_m, tau_syn, C_m, false );
  }
  else
  {
    li = li * std::exp( -u / tau_syn ) + lv * eventprop_kern( u, tau_m, tau_syn ) / C_m;
  }
  lv = lv * std::exp( -u / tau_m );
}

//! The adjoint u ms earlier with no event of the neuron in between (reference: glif3.adjoint_propagate).
void eventprop_glif3_adjoint_propagate( std::vector< double >& lam,
  double u,
  const EventpropGlif3Params& p,
  bool refractory );

//! An upper bound of v(u) over [0, horizon] of the free dynamics (reference: glif3.upper_bound).
double eventprop_glif3_upper_bound( const double* s, const EventpropGlif3Params& p, double horizon );

//! v(u) of the free dynamics as an exponential sum (reference: glif3.voltage_expsum).
EventpropExpPoly eventprop_glif3_voltage_expsum( const std::vector< double >& s, const EventpropGlif3Params& p );

/**
 * Time u in [0, horizon) at which the free v(u) first reaches theta, or a negative value if none (reference:
 * glif3.first_crossing: the cheap bound, the bound on eight pieces, then the Rolle split and a bracketed root).
 */
double eventprop_glif3_first_crossing( const std::vector< double >& s, double horizon, const EventpropGlif3Params& p );

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_GLIF3_MATH_H
