/*
 *  eprop_inline_optimizer.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_INLINE_OPTIMIZER_H
#define NESTGRAD_EPROP_INLINE_OPTIMIZER_H

#include <algorithm>
#include <cmath>
#include <string>

// NEST public headers
#include "common_synapse_properties.h"
#include "connection.h"
#include "connector_model.h"
#include "dictionary.h"
#include "exceptions.h"
#include "nest_names.h"

namespace nestgrad
{

/**
 * Optimizer settings shared by all connections of one of nestgrad's e-prop synapse models (eprop_event_synapse,
 * eprop_vector_synapse): the "optimizer" dictionary of NEST's eprop_synapse (type gradient_descent or adam,
 * batch_size, eta, Wmin, Wmax, beta_1, beta_2, epsilon), with optimize_each_step fixed to false.
 */
class EpropOptimizerProperties : public nest::CommonSynapseProperties
{
public:
  void get_status( Dictionary& d ) const;
  void set_status( const Dictionary& d, nest::ConnectorModel& cm );

  bool adam_ = false;
  long batch_size_ = 1;
  double eta_ = 1e-4;
  double Wmin_ = -100.0;
  double Wmax_ = 100.0;
  double beta_1_ = 0.9;
  double beta_2_ = 0.999;
  double epsilon_ = 1e-7;
};

/**
 * Per-connection optimizer state, kept inside the synapse (no heap object). NEST 3.10's rule: gradients are summed
 * until the first spike after a batch boundary, then averaged over batch_size steps and applied (one Adam step per
 * boundary passed; batches without spikes contribute zero gradients); the weight is clipped to [Wmin, Wmax].
 */
struct EpropOptimizerState
{
  double cumulative_gradient = 0.0;
  long optimization_step = 1;  //!< batch index of the last update; 1: no update yet
  double m = 0.0;              //!< Adam's first moment
  double v = 0.0;              //!< Adam's second moment
  double beta_1_power = 1.0;
  double beta_2_power = 1.0;

  //! Adds the gradient of a window that ends at step t_update and updates weight at a batch boundary.
  void
  add( const EpropOptimizerProperties& cp, const long t_update, const double gradient, double& weight )
  {
    cumulative_gradient += gradient;
    // optimization_step >= 1 + t_update / batch_size, without a division per spike and synapse (t_update >= 0)
    if ( t_update < optimization_step * cp.batch_size_ )
    {
      return;
    }
    const long current_step = 1 + t_update / cp.batch_size_;
    cumulative_gradient /= cp.batch_size_;
    double w = weight;
    if ( cp.adam_ )
    {
      for ( ; optimization_step < current_step; ++optimization_step )
      {
        beta_1_power *= cp.beta_1_;
        beta_2_power *= cp.beta_2_;
        const double alpha = cp.eta_ * std::sqrt( 1.0 - beta_2_power ) / ( 1.0 - beta_1_power );
        m = cp.beta_1_ * m + ( 1.0 - cp.beta_1_ ) * cumulative_gradient;
        v = cp.beta_2_ * v + ( 1.0 - cp.beta_2_ ) * cumulative_gradient * cumulative_gradient;
        w -= alpha * m / ( std::sqrt( v ) + cp.epsilon_ );
        cumulative_gradient = 0.0;
      }
    }
    else
    {
      w -= cp.eta_ * cumulative_gradient;
      cumulative_gradient = 0.0;
    }
    weight = std::clamp( w, cp.Wmin_, cp.Wmax_ );
    optimization_step = current_step;
  }
};

//! Throws BadProperty naming the synapse model if w lies outside the optimizer's [Wmin, Wmax].
inline void
check_weight_in_bounds( const std::string& model, const double w, const EpropOptimizerProperties& cp )
{
  if ( not( w >= cp.Wmin_ and w <= cp.Wmax_ ) )
  {
    throw nest::BadProperty( model + ": weight " + std::to_string( w ) + " outside [Wmin, Wmax] = ["
      + std::to_string( cp.Wmin_ ) + ", " + std::to_string( cp.Wmax_ ) + "]." );
  }
}

//! The per-connection status of nestgrad's e-prop synapses: weight, Adam's moments and bias-correction powers.
inline void
get_weight_and_moments( Dictionary& d, const double weight, const EpropOptimizerState& optimizer )
{
  d[ nest::names::weight ] = weight;
  d[ "adam_m" ] = optimizer.m;
  d[ "adam_v" ] = optimizer.v;
  d[ "adam_beta_1_power" ] = optimizer.beta_1_power;
  d[ "adam_beta_2_power" ] = optimizer.beta_2_power;
}

//! Sets weight, Adam's moments and powers from d; the weight must lie within the bounds and the powers in (0, 1]
//! (nothing changes otherwise).
inline void
set_weight_and_moments( const Dictionary& d,
  const std::string& model,
  const EpropOptimizerProperties& cp,
  double& weight,
  EpropOptimizerState& optimizer )
{
  double w = weight;
  d.update_value( nest::names::weight, w );
  check_weight_in_bounds( model, w, cp );
  // Adam's bias correction beta^t after t steps: carried over when a run continues in a new kernel
  double b1p = optimizer.beta_1_power;
  double b2p = optimizer.beta_2_power;
  d.update_value( "adam_beta_1_power", b1p );
  d.update_value( "adam_beta_2_power", b2p );
  if ( not( b1p > 0.0 and b1p <= 1.0 and b2p > 0.0 and b2p <= 1.0 ) )
  {
    throw nest::BadProperty( model + ": adam_beta_1_power = " + std::to_string( b1p ) + " and adam_beta_2_power = "
      + std::to_string( b2p ) + " must lie in (0, 1]." );
  }
  d.update_value( "adam_m", optimizer.m );
  d.update_value( "adam_v", optimizer.v );
  optimizer.beta_1_power = b1p;
  optimizer.beta_2_power = b2p;
  weight = w;
}

/**
 * What check_connection() of nestgrad's e-prop synapses passes to NEST's connection check as the source side: a
 * node that takes no spikes (the synapses are primary and need no secondary events).
 */
class EpropSynapseDummyTarget : public nest::ConnTestDummyNodeBase
{
public:
  using nest::ConnTestDummyNodeBase::handles_test_event;
  size_t
  handles_test_event( nest::SpikeEvent&, size_t ) override
  {
    return nest::invalid_port;
  }
};

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_INLINE_OPTIMIZER_H
