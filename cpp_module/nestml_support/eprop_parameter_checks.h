/*
 *  eprop_parameter_checks.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_PARAMETER_CHECKS_H
#define NESTGRAD_EPROP_PARAMETER_CHECKS_H

#include <string>

// NEST public headers
#include "dict_util.h"
#include "exceptions.h"
#include "nest_names.h"
#include "node.h"

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

/**
 * The e-prop parameters of nestgrad's recurrent e-prop neurons (C++ and NESTML-generated), with the names, units and
 * defaults of NEST's built-in e-prop neurons.
 */
struct EpropParameters
{
  double c_reg_ = 0.0;       //!< firing-rate regularisation strength
  double f_target_ = 10.0;   //!< target firing rate (Hz)
  double kappa_ = 0.97;      //!< low-pass filter of the eligibility trace (readout's)
  double kappa_reg_ = 0.97;  //!< low-pass filter of the firing-rate estimate
  std::string surrogate_gradient_function_ = "piecewise_linear";  //!< one of NEST's e-prop surrogate gradients
  double surrogate_gradient_height_ = 0.3;
  double surrogate_gradient_width_ = 1.0;

  void
  get( Dictionary& d ) const
  {
    d[ nest::names::c_reg ] = c_reg_;
    d[ nest::names::f_target ] = f_target_;
    d[ nest::names::kappa ] = kappa_;
    d[ nest::names::kappa_reg ] = kappa_reg_;
    d[ nest::names::surrogate_gradient_function ] = surrogate_gradient_function_;
    d[ nest::names::surrogate_gradient_height ] = surrogate_gradient_height_;
    d[ nest::names::surrogate_gradient_width ] = surrogate_gradient_width_;
  }

  //! Reads the values given in d and checks them all (check_eprop_parameters()); call it on a copy.
  void
  set( const Dictionary& d, nest::Node* node )
  {
    nest::update_value_param( d, nest::names::c_reg, c_reg_, node );
    nest::update_value_param( d, nest::names::f_target, f_target_, node );
    nest::update_value_param( d, nest::names::kappa, kappa_, node );
    nest::update_value_param( d, nest::names::kappa_reg, kappa_reg_, node );
    nest::update_value_param( d, nest::names::surrogate_gradient_function, surrogate_gradient_function_, node );
    nest::update_value_param( d, nest::names::surrogate_gradient_height, surrogate_gradient_height_, node );
    nest::update_value_param( d, nest::names::surrogate_gradient_width, surrogate_gradient_width_, node );
    check_eprop_parameters(
      c_reg_, f_target_, kappa_, kappa_reg_, surrogate_gradient_height_, surrogate_gradient_width_ );
  }
};

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_PARAMETER_CHECKS_H
