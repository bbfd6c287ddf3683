/*
 *  eprop_parameter_checks.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_PARAMETER_CHECKS_H
#define NESTGRAD_EPROP_PARAMETER_CHECKS_H

#include <string>

// NEST public headers
#include "exceptions.h"

namespace nestgrad
{

/**
 * The checks of the e-prop parameters that every recurrent e-prop neuron of nestgrad has (C++ and NESTML-generated);
 * throws BadProperty naming the value.
 */
inline void
check_eprop_parameters( const double c_reg,
  const double f_target,
  const double kappa,
  const double kappa_reg,
  const double surrogate_gradient_height,
  const double surrogate_gradient_width )
{
  if ( not( c_reg >= 0.0 ) )
  {
    throw nest::BadProperty( "c_reg >= 0 required (got " + std::to_string( c_reg ) + ")." );
  }
  if ( not( f_target >= 0.0 ) )
  {
    throw nest::BadProperty( "f_target >= 0 required (got " + std::to_string( f_target ) + " Hz)." );
  }
  if ( not( kappa >= 0.0 and kappa <= 1.0 ) )
  {
    throw nest::BadProperty( "0 <= kappa <= 1 required (got " + std::to_string( kappa ) + ")." );
  }
  if ( not( kappa_reg >= 0.0 and kappa_reg <= 1.0 ) )
  {
    throw nest::BadProperty( "0 <= kappa_reg <= 1 required (got " + std::to_string( kappa_reg ) + ")." );
  }
  if ( not( surrogate_gradient_height > 0.0 ) )
  {
    throw nest::BadProperty(
      "surrogate_gradient_height > 0 required (got " + std::to_string( surrogate_gradient_height ) + ")." );
  }
  if ( not( surrogate_gradient_width > 0.0 ) )
  {
    throw nest::BadProperty(
      "surrogate_gradient_width > 0 required (got " + std::to_string( surrogate_gradient_width ) + ")." );
  }
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_PARAMETER_CHECKS_H
