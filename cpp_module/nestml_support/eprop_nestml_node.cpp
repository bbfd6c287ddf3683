/*
 *  eprop_nestml_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_nestml_node.h"

#include "eprop_parameter_checks.h"

// NEST public headers
#include "dict_util.h"
#include "event_delivery_manager_impl.h"
#include "kernel_manager.h"
#include "nest_names.h"

namespace nestgrad
{

EpropNestmlNode::EpropNestmlNode()
  : nest::EpropArchivingNodeRecurrent< false >()
  , c_reg_( 0.0 )
  , f_target_( 10.0 )
  , kappa_( 0.97 )
  , kappa_reg_( 0.97 )
  , surrogate_gradient_function_( "piecewise_linear" )
  , surrogate_gradient_height_( 0.3 )
  , surrogate_gradient_width_( 1.0 )
  , spiked_( false )
  , vector_registration_( false )
{
}

void
EpropNestmlNode::register_eprop_connection()
{
  if ( not vector_registration_ and needs_vector_synapse() )
  {
    throw nest::IllegalConnection( get_name() + ": its eligibility vector has " + std::to_string( eligibility_size() )
      + " components or it has several spike receptor ports; NEST's eprop_synapse keeps two components and no "
        "port. Connect it with eprop_vector_synapse." );
  }
  nest::EpropArchivingNodeRecurrent< false >::register_eprop_connection();
}

void
EpropNestmlNode::get_status( Dictionary& d ) const
{
  nest::EpropArchivingNodeRecurrent< false >::get_status( d );
  d[ nest::names::c_reg ] = c_reg_;
  d[ nest::names::f_target ] = f_target_;
  d[ nest::names::kappa ] = kappa_;
  d[ nest::names::kappa_reg ] = kappa_reg_;
  d[ nest::names::surrogate_gradient_function ] = surrogate_gradient_function_;
  d[ nest::names::surrogate_gradient_height ] = surrogate_gradient_height_;
  d[ nest::names::surrogate_gradient_width ] = surrogate_gradient_width_;
  d[ "eligibility_size" ] = static_cast< long >( eligibility_size() );
  d[ "eprop_synapse_model" ] = std::string( needs_vector_synapse() ? "eprop_vector_synapse" : "eprop_synapse" );
}

void
EpropNestmlNode::set_status( const Dictionary& d )
{
  double c_reg = c_reg_;
  double f_target = f_target_;
  double kappa = kappa_;
  double kappa_reg = kappa_reg_;
  std::string surrogate = surrogate_gradient_function_;
  double height = surrogate_gradient_height_;
  double width = surrogate_gradient_width_;
  bool ignore_and_spike = false;
  nest::update_value_param( d, nest::names::c_reg, c_reg, this );
  nest::update_value_param( d, nest::names::f_target, f_target, this );
  nest::update_value_param( d, nest::names::kappa, kappa, this );
  nest::update_value_param( d, nest::names::kappa_reg, kappa_reg, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_function, surrogate, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_height, height, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_width, width, this );
  nest::update_value_param( d, nest::names::ignore_and_spike, ignore_and_spike, this );

  check_eprop_parameters( c_reg, f_target, kappa, kappa_reg, height, width );
  if ( ignore_and_spike )
  {
    // the spike condition is the model's own (its onCondition block); forced spikes would bypass it
    throw nest::BadProperty( get_name() + ": ignore_and_spike is not supported by NESTML-generated e-prop neurons." );
  }
  surrogate_gradient_function function = nullptr;
  try
  {
    function = find_surrogate_gradient( surrogate );
  }
  catch ( const nest::BadProperty& )
  {
    throw nest::BadProperty( get_name() + ": surrogate_gradient_function = \"" + surrogate
      + "\" is unknown; known: arctan_derivative, exponential, fast_sigmoid_derivative, piecewise_linear." );
  }

  nest::EpropArchivingNodeRecurrent< false >::set_status( d );
  c_reg_ = c_reg;
  f_target_ = f_target;
  kappa_ = kappa;
  kappa_reg_ = kappa_reg;
  surrogate_gradient_function_ = surrogate;
  surrogate_gradient_height_ = height;
  surrogate_gradient_width_ = width;
  compute_surrogate_gradient_ = function;
}

void
EpropNestmlNode::eprop_pre_run_hook_()
{
  FlushEventMechanism::pre_run_hook();
}

size_t
EpropNestmlNode::handles_test_event( nest::LearningSignalConnectionEvent&, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

void
EpropNestmlNode::handle( nest::LearningSignalConnectionEvent& e )
{
  for ( auto it_event = e.begin(); it_event != e.end(); )
  {
    const long time_step = e.get_stamp().get_steps();
    const double weight = e.get_weight();
    const double error_signal = e.get_coeffvalue( it_event );  // advances the iterator
    write_learning_signal_to_history( time_step, weight * error_signal );
  }
}

double
EpropNestmlNode::eprop_end_of_step_( const long t, const long lag, const double surrogate_gradient )
{
  double z = 0.0;
  if ( spiked_ )
  {
    z = 1.0;
    set_last_event_time( t );
  }
  else if ( flush_event_is_due( t ) )
  {
    nest::SpikeEvent se;
    se.set_flush_event_flag( true );
    nest::kernel().event_delivery_manager.send( *this, se, lag );
    set_last_event_time( t );
  }
  spiked_ = false;

  append_new_eprop_history_entry( t );
  write_surrogate_gradient_to_history( t, surrogate_gradient );
  // the archiving node expects the target rate in spikes per ms
  write_firing_rate_reg_to_history( t, z, f_target_ / 1000.0, kappa_reg_, c_reg_ );
  return get_learning_signal_from_history( t );
}

}  // namespace nestgrad
