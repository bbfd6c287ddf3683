/*
 *  eprop_inline_optimizer.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_inline_optimizer.h"

// NEST public headers
#include "exceptions.h"
#include "nest_names.h"

namespace nestgrad
{

void
EpropOptimizerProperties::get_status( Dictionary& d ) const
{
  CommonSynapseProperties::get_status( d );
  Dictionary optimizer;
  optimizer[ nest::names::type ] = std::string( adam_ ? "adam" : "gradient_descent" );
  optimizer[ nest::names::batch_size ] = batch_size_;
  optimizer[ nest::names::eta ] = eta_;
  optimizer[ nest::names::Wmin ] = Wmin_;
  optimizer[ nest::names::Wmax ] = Wmax_;
  optimizer[ nest::names::optimize_each_step ] = false;
  if ( adam_ )
  {
    optimizer[ nest::names::beta_1 ] = beta_1_;
    optimizer[ nest::names::beta_2 ] = beta_2_;
    optimizer[ nest::names::epsilon ] = epsilon_;
  }
  d[ nest::names::optimizer ] = optimizer;
}

void
EpropOptimizerProperties::set_status( const Dictionary& d, nest::ConnectorModel& cm )
{
  CommonSynapseProperties::set_status( d, cm );
  if ( not d.known( nest::names::optimizer ) )
  {
    return;
  }
  const Dictionary optimizer = d.get< Dictionary >( nest::names::optimizer );
  EpropOptimizerProperties tmp = *this;  // an invalid value leaves the settings unchanged

  std::string type = adam_ ? "adam" : "gradient_descent";
  optimizer.update_value( nest::names::type, type );
  if ( type != "adam" and type != "gradient_descent" )
  {
    throw nest::BadProperty( cm.get_name() + ": optimizer type must be \"gradient_descent\" or \"adam\" (got \""
      + type + "\")." );
  }
  tmp.adam_ = type == "adam";
  optimizer.update_value( nest::names::batch_size, tmp.batch_size_ );
  optimizer.update_value( nest::names::eta, tmp.eta_ );
  optimizer.update_value( nest::names::Wmin, tmp.Wmin_ );
  optimizer.update_value( nest::names::Wmax, tmp.Wmax_ );
  optimizer.update_value( nest::names::beta_1, tmp.beta_1_ );
  optimizer.update_value( nest::names::beta_2, tmp.beta_2_ );
  optimizer.update_value( nest::names::epsilon, tmp.epsilon_ );
  bool each_step = false;
  optimizer.update_value( nest::names::optimize_each_step, each_step );

  if ( each_step )
  {
    throw nest::BadProperty( cm.get_name() + ": optimize_each_step = true is not supported (it updates the weight "
                             "every step, which needs the per-step loop of eprop_synapse)." );
  }
  if ( tmp.batch_size_ <= 0 )
  {
    throw nest::BadProperty( cm.get_name() + ": optimizer batch_size > 0 required (got "
      + std::to_string( tmp.batch_size_ ) + ")." );
  }
  if ( not( tmp.eta_ >= 0.0 ) )
  {
    throw nest::BadProperty( cm.get_name() + ": optimizer eta >= 0 required (got " + std::to_string( tmp.eta_ )
      + ")." );
  }
  if ( not( tmp.Wmin_ <= tmp.Wmax_ ) )
  {
    throw nest::BadProperty( cm.get_name() + ": optimizer Wmin <= Wmax required (got Wmin = "
      + std::to_string( tmp.Wmin_ ) + ", Wmax = " + std::to_string( tmp.Wmax_ ) + ")." );
  }
  if ( not( tmp.beta_1_ >= 0.0 and tmp.beta_1_ < 1.0 and tmp.beta_2_ >= 0.0 and tmp.beta_2_ < 1.0 ) )
  {
    throw nest::BadProperty( cm.get_name() + ": Adam's beta_1 and beta_2 must lie in [0, 1)." );
  }
  if ( not( tmp.epsilon_ >= 0.0 ) )
  {
    throw nest::BadProperty( cm.get_name() + ": Adam's epsilon >= 0 required." );
  }
  *this = tmp;
}

}  // namespace nestgrad
