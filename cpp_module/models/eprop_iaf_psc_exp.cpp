/*
 *  eprop_iaf_psc_exp.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_iaf_psc_exp.h"

#include <algorithm>
#include <cmath>
#include <limits>

// NEST public headers
#include "dict_util.h"
#include "eprop_archiving_node_recurrent_impl.h"
#include "exceptions.h"
#include "kernel_manager.h"
#include "nest_impl.h"
#include "universal_data_logger_impl.h"

namespace nestgrad
{

void
register_eprop_iaf_psc_exp( const std::string& name )
{
  nest::register_node_model< eprop_iaf_psc_exp >( name );
}

double
psc_exp_current_to_voltage_propagator( const double tau_syn, const double tau_m, const double c_m, const double h )
{
  const double p22 = std::exp( -h / tau_m );
  const double rate_difference = 1.0 / tau_syn - 1.0 / tau_m;
  if ( rate_difference == 0.0 )
  {
    return h / c_m * p22;
  }
  // e^{-h/tau_m} - e^{-h/tau_syn} = -e^{-h/tau_m} expm1(-h (1/tau_syn - 1/tau_m)): no cancellation near tau_syn = tau_m
  return tau_syn * tau_m / ( c_m * ( tau_m - tau_syn ) ) * ( -p22 * std::expm1( -h * rate_difference ) );
}

nest::RecordablesMap< eprop_iaf_psc_exp > eprop_iaf_psc_exp::recordablesMap_;

}  // namespace nestgrad

namespace nest
{
template <>
void
RecordablesMap< nestgrad::eprop_iaf_psc_exp >::create()
{
  insert_( names::eprop_history_duration, &nestgrad::eprop_iaf_psc_exp::get_eprop_history_duration );
  insert_( "event_history_size", &nestgrad::eprop_iaf_psc_exp::get_event_history_size );
  insert_( names::learning_signal, &nestgrad::eprop_iaf_psc_exp::get_learning_signal_ );
  insert_( names::surrogate_gradient, &nestgrad::eprop_iaf_psc_exp::get_surrogate_gradient_ );
  insert_( names::V_m, &nestgrad::eprop_iaf_psc_exp::get_v_m_ );
  insert_( names::I_syn_ex, &nestgrad::eprop_iaf_psc_exp::get_i_syn_ex_ );
  insert_( names::I_syn_in, &nestgrad::eprop_iaf_psc_exp::get_i_syn_in_ );
}
}  // namespace nest

namespace nestgrad
{

/* ---------------------------------------------------------------------------------------------------------------
 * Default constructors
 * ------------------------------------------------------------------------------------------------------------- */

eprop_iaf_psc_exp::Parameters_::Parameters_()
  : EpropParameters()
  , C_m_( 250.0 )
  , E_L_( -70.0 )
  , I_e_( 0.0 )
  , t_ref_( 2.0 )
  , tau_m_( 10.0 )
  , tau_syn_ex_( 2.0 )
  , tau_syn_in_( 2.0 )
  , V_min_( -std::numeric_limits< double >::max() )
  , V_reset_( -70.0 - E_L_ )
  , V_th_( -55.0 - E_L_ )
{
}

eprop_iaf_psc_exp::State_::State_()
  : learning_signal_( 0.0 )
  , r_( 0 )
  , surrogate_gradient_( 0.0 )
  , i_stim_( 0.0 )
  , i_syn_ex_( 0.0 )
  , i_syn_in_( 0.0 )
  , v_m_( 0.0 )
  , z_( 0.0 )
{
}

eprop_iaf_psc_exp::Buffers_::Buffers_( eprop_iaf_psc_exp& n )
  : logger_( n )
{
}

eprop_iaf_psc_exp::Buffers_::Buffers_( const Buffers_&, eprop_iaf_psc_exp& n )
  : logger_( n )
{
}

/* ---------------------------------------------------------------------------------------------------------------
 * Getters and setters: every value is read and written in user units (mV absolute, Hz, ms).
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_iaf_psc_exp::Parameters_::get( Dictionary& d ) const
{
  EpropParameters::get( d );
  d[ nest::names::C_m ] = C_m_;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::I_e ] = I_e_;
  d[ nest::names::t_ref ] = t_ref_;
  d[ nest::names::tau_m ] = tau_m_;
  d[ nest::names::tau_syn_ex ] = tau_syn_ex_;
  d[ nest::names::tau_syn_in ] = tau_syn_in_;
  d[ nest::names::V_min ] = V_min_ + E_L_;
  d[ nest::names::V_reset ] = V_reset_ + E_L_;
  d[ nest::names::V_th ] = V_th_ + E_L_;
}

double
eprop_iaf_psc_exp::Parameters_::set( const Dictionary& d, nest::Node* node )
{
  // Voltages are stored relative to E_L: if E_L changes and a voltage is not given, its absolute value is kept
  // (NEST's convention), so its value relative to E_L changes by -delta_EL.
  const double E_L_old = E_L_;
  nest::update_value_param( d, nest::names::E_L, E_L_, node );
  const double delta_EL = E_L_ - E_L_old;

  V_th_ -= nest::update_value_param( d, nest::names::V_th, V_th_, node ) ? E_L_ : delta_EL;
  V_reset_ -= nest::update_value_param( d, nest::names::V_reset, V_reset_, node ) ? E_L_ : delta_EL;
  V_min_ -= nest::update_value_param( d, nest::names::V_min, V_min_, node ) ? E_L_ : delta_EL;

  nest::update_value_param( d, nest::names::C_m, C_m_, node );
  nest::update_value_param( d, nest::names::I_e, I_e_, node );
  nest::update_value_param( d, nest::names::t_ref, t_ref_, node );
  nest::update_value_param( d, nest::names::tau_m, tau_m_, node );
  nest::update_value_param( d, nest::names::tau_syn_ex, tau_syn_ex_, node );
  nest::update_value_param( d, nest::names::tau_syn_in, tau_syn_in_, node );

  if ( not( C_m_ > 0.0 ) )
  {
    throw nest::BadProperty( "C_m > 0 required (got " + std::to_string( C_m_ ) + " pF)." );
  }
  if ( not( tau_m_ > 0.0 ) )
  {
    throw nest::BadProperty( "tau_m > 0 required (got " + std::to_string( tau_m_ ) + " ms)." );
  }
  if ( not( tau_syn_ex_ > 0.0 ) )
  {
    throw nest::BadProperty( "tau_syn_ex > 0 required (got " + std::to_string( tau_syn_ex_ ) + " ms)." );
  }
  if ( not( tau_syn_in_ > 0.0 ) )
  {
    throw nest::BadProperty( "tau_syn_in > 0 required (got " + std::to_string( tau_syn_in_ ) + " ms)." );
  }
  if ( not( t_ref_ >= 0.0 ) )
  {
    throw nest::BadProperty( "t_ref >= 0 required (got " + std::to_string( t_ref_ ) + " ms)." );
  }
  if ( not( V_th_ > V_reset_ ) )
  {
    throw nest::BadProperty( "V_th > V_reset required (got V_th = " + std::to_string( V_th_ + E_L_ )
      + " mV, V_reset = " + std::to_string( V_reset_ + E_L_ ) + " mV)." );
  }
  if ( not( V_reset_ >= V_min_ ) )
  {
    throw nest::BadProperty( "V_reset >= V_min required." );
  }
  EpropParameters::set( d, node );  // the e-prop values, checked after the neuron's own
  return delta_EL;
}

void
eprop_iaf_psc_exp::State_::get( Dictionary& d, const Parameters_& p ) const
{
  d[ nest::names::V_m ] = v_m_ + p.E_L_;
  d[ nest::names::I_syn_ex ] = i_syn_ex_;
  d[ nest::names::I_syn_in ] = i_syn_in_;
  d[ nest::names::surrogate_gradient ] = surrogate_gradient_;
  d[ nest::names::learning_signal ] = learning_signal_;
}

void
eprop_iaf_psc_exp::State_::set( const Dictionary& d, const Parameters_& p, double delta_EL, nest::Node* node )
{
  v_m_ -= nest::update_value_param( d, nest::names::V_m, v_m_, node ) ? p.E_L_ : delta_EL;
  nest::update_value_param( d, nest::names::I_syn_ex, i_syn_ex_, node );
  nest::update_value_param( d, nest::names::I_syn_in, i_syn_in_, node );
}

void
eprop_iaf_psc_exp::get_status( Dictionary& d ) const
{
  EpropEventNode::get_status( d );
  P_.get( d );
  S_.get( d, P_ );
  d[ nest::names::recordables ] = recordablesMap_.get_list();
  d[ "event_history_size" ] = get_event_history_size();
  d[ "event_window_summaries" ] = get_event_window_summaries();
}

void
eprop_iaf_psc_exp::set_status( const Dictionary& d )
{
  // Work on copies so that an invalid value leaves the neuron unchanged.
  Parameters_ ptmp = P_;
  const double delta_EL = ptmp.set( d, this );
  State_ stmp = S_;
  stmp.set( d, ptmp, delta_EL, this );
  const auto surrogate = select_surrogate_gradient_( ptmp.surrogate_gradient_function_ );  // throws on unknown names

  EpropEventNode::set_status( d );
  P_ = ptmp;
  S_ = stmp;
  compute_surrogate_gradient_ = surrogate;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Construction and initialisation
 * ------------------------------------------------------------------------------------------------------------- */

eprop_iaf_psc_exp::eprop_iaf_psc_exp()
  : EpropEventNode()
  , P_()
  , S_()
  , B_( *this )
{
  recordablesMap_.create();
}

eprop_iaf_psc_exp::eprop_iaf_psc_exp( const eprop_iaf_psc_exp& n )
  : EpropEventNode( n )
  , P_( n.P_ )
  , S_( n.S_ )
  , B_( n.B_, *this )
{
}

void
eprop_iaf_psc_exp::init_buffers_()
{
  B_.spikes_ex_.clear();
  B_.spikes_in_.clear();
  B_.currents_.clear();
  B_.logger_.reset();
  clear_event_history_();
}

void
eprop_iaf_psc_exp::pre_run_hook()
{
  B_.logger_.init();
  FlushEventMechanism::pre_run_hook();

  const double h = nest::Time::get_resolution().get_ms();
  V_.RefractoryCounts_ = nest::Time( nest::Time::ms( P_.t_ref_ ) ).get_steps();
  V_.P22_ = std::exp( -h / P_.tau_m_ );
  V_.P20_ = -P_.tau_m_ / P_.C_m_ * std::expm1( -h / P_.tau_m_ );
  V_.P11_ex_ = std::exp( -h / P_.tau_syn_ex_ );
  V_.P11_in_ = std::exp( -h / P_.tau_syn_in_ );
  V_.P21_ex_ = psc_exp_current_to_voltage_propagator( P_.tau_syn_ex_, P_.tau_m_, P_.C_m_, h );
  V_.P21_in_ = psc_exp_current_to_voltage_propagator( P_.tau_syn_in_, P_.tau_m_, P_.C_m_, h );

  if ( event_history_active_() )
  {
    const double lambda[ 3 ] = { V_.P22_, V_.P11_ex_, V_.P11_in_ };
    if ( V_.P11_ex_ == V_.P22_ or V_.P11_in_ == V_.P22_ )
    {
      throw nest::BadProperty( get_name() + ": eprop_event_synapse requires tau_syn_ex != tau_m and tau_syn_in != "
        "tau_m (the trace is then not a sum of geometric sequences); use eprop_synapse." );
    }
    configure_event_history_( 3, lambda, P_.kappa_, P_.kappa_reg_, P_.c_reg_ > 0.0 );
    // what event_gradient() reads, next to the base class's fields
    event_cutoff_ = get_eprop_isi_trace_cutoff();
    // and the quotients of the trace's two geometric parts per receptor (no division per spike and synapse):
    // q = P21 / (P11 - P22), c = P21 / (P22 - P11) = -q, c / P22, c / P11
    const double q_ex = V_.P21_ex_ / ( V_.P11_ex_ - V_.P22_ );
    const double q_in = V_.P21_in_ / ( V_.P11_in_ - V_.P22_ );
    const double c_ex = V_.P21_ex_ / ( V_.P22_ - V_.P11_ex_ );
    const double c_in = V_.P21_in_ / ( V_.P22_ - V_.P11_in_ );
    const double constants[ 13 ] = { V_.P22_, V_.P11_ex_, V_.P11_in_, V_.P21_ex_, V_.P21_in_, P_.kappa_, P_.kappa_reg_,
      q_ex, q_in, c_ex / V_.P22_, c_in / V_.P22_, c_ex / V_.P11_ex_, c_in / V_.P11_in_ };
    std::copy( constants, constants + 13, event_param_ );
  }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Update: the order of operations is that of NEST's iaf_psc_exp.
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_iaf_psc_exp::update( nest::Time const& origin, const long from, const long to )
{
  for ( long lag = from; lag < to; ++lag )
  {
    const long t = origin.get_steps() + lag;

    if ( S_.r_ == 0 )
    {
      S_.v_m_ = V_.P22_ * S_.v_m_ + V_.P21_ex_ * S_.i_syn_ex_ + V_.P21_in_ * S_.i_syn_in_
        + V_.P20_ * ( P_.I_e_ + S_.i_stim_ );
      S_.v_m_ = std::max( S_.v_m_, P_.V_min_ );
    }
    else
    {
      --S_.r_;  // v stays at V_reset while refractory
    }

    S_.i_syn_ex_ = V_.P11_ex_ * S_.i_syn_ex_ + B_.spikes_ex_.get_value( lag );
    S_.i_syn_in_ = V_.P11_in_ * S_.i_syn_in_ + B_.spikes_in_.get_value( lag );

    S_.z_ = 0.0;
    S_.surrogate_gradient_ = ( this->*compute_surrogate_gradient_ )(
      S_.r_, S_.v_m_, P_.V_th_, P_.surrogate_gradient_height_, P_.surrogate_gradient_width_ );

    if ( spike_event_is_due( S_.v_m_ >= P_.V_th_ and S_.r_ == 0 ) )
    {
      S_.z_ = 1.0;
      S_.r_ = V_.RefractoryCounts_;
      S_.v_m_ = P_.V_reset_;
      nest::SpikeEvent se;
      nest::kernel().event_delivery_manager.send( *this, se, lag );
      set_last_event_time( t );
    }
    else
    {
      send_flush_event_if_due_( t, lag );
    }

    S_.learning_signal_ =
      eprop_history_step_( t, S_.z_, S_.surrogate_gradient_, P_.f_target_, P_.kappa_reg_, P_.c_reg_ );

    S_.i_stim_ = B_.currents_.get_value( lag );
    B_.logger_.record_data( t );

  }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Event handling
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_iaf_psc_exp::handle( nest::SpikeEvent& e )
{
  assert( e.get_delay_steps() > 0 );
  const long steps = e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() );
  const double w = e.get_weight() * e.get_multiplicity();
  if ( e.get_weight() >= 0.0 )
  {
    B_.spikes_ex_.add_value( steps, w );
  }
  else
  {
    B_.spikes_in_.add_value( steps, w );
  }
}

void
eprop_iaf_psc_exp::handle( nest::CurrentEvent& e )
{
  assert( e.get_delay_steps() > 0 );
  B_.currents_.add_value( e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() ),
    e.get_weight() * e.get_current() );
}

void
eprop_iaf_psc_exp::handle( nest::DataLoggingRequest& e )
{
  B_.logger_.handle( e );
}

/* ---------------------------------------------------------------------------------------------------------------
 * Gradient of one synapse between two presynaptic spikes (called by eprop_synapse).
 *
 * The synapse stores the two components of the eligibility vector in its z_bar (eps_v) and epsilon (eps_i) slots.
 * ------------------------------------------------------------------------------------------------------------- */

double
eprop_iaf_psc_exp::event_gradient( const long t_spike,
  const long t_spike_previous,
  const double weight,
  size_t,
  EventEpropTrace& trace )
{
  // The synapse holds eps_v (y[0]), eps_i (y[1]), e_bar and e_bar_reg at a - 1, one step before the window start a,
  // and whether a spike enters eps_i at a (pending). From a on eps_v = Y_v P22^(t - a) + Y_i P11^(t - a), with P11,
  // P21 of the receptor selected by the sign of the weight the previous spike carried, also for the step into a
  // (as in the step-by-step rule, where a weight changing sign switches the filter of the whole trace).
  const long a = t_spike_previous - 1;
  const long stop = t_spike - 1;
  const long end = event_window_end_( t_spike, t_spike_previous );
  finalize_event_entries_( end - 1 );

  const bool excitatory = weight >= 0.0;
  const int v_slot = lambda_slot_( 0 );
  const int i_slot = lambda_slot_( excitatory ? 1 : 2 );
  const double P22 = event_param_[ 0 ];
  const double P11 = event_param_[ excitatory ? 1 : 2 ];
  const double P21 = event_param_[ excitatory ? 3 : 4 ];
  const double kappa = event_param_[ 5 ];
  const double eps_v_a = P22 * trace.y[ 0 ] + P21 * trace.y[ 1 ];
  const double eps_i_a = P11 * trace.y[ 1 ] + ( trace.pending ? 1.0 : 0.0 );
  double Y[ 3 ] = { 0.0, 0.0, 0.0 };
  Y[ i_slot ] = event_param_[ excitatory ? 7 : 8 ] * eps_i_a;
  Y[ v_slot ] = eps_v_a - Y[ i_slot ];
  const double kr = event_param_[ 6 ];
  double ebar[ 2 ];
  double g[ 2 ];
  // entry a still sees the old trace (the new spike enters at a + 1): one step, directly
  event_first_entry_( a, eps_v_a, kappa, kr, trace, ebar, g );
  // the spike adds c (P22^(t-a-1) - P11^(t-a-1)) to eps_v, c = P21 / (P22 - P11)
  Y[ v_slot ] += event_param_[ excitatory ? 9 : 10 ];   // c / P22
  Y[ i_slot ] -= event_param_[ excitatory ? 11 : 12 ];  // c / P11
  event_window_( a + 1, end, ebar, Y, a, g );

  // carry the state to the next window start (stop): traces decay, filtered traces decay beyond the cutoff
  const long n = stop - 1 - a;  // to one step before the next window start
  if ( n == 0 )
  {
    trace.y[ 0 ] = eps_v_a;
    trace.y[ 1 ] = eps_i_a;
    trace.pending = true;  // the new spike enters at the next window's first step
  }
  else
  {
    const double p11n = lambda_power_( i_slot, n );
    trace.y[ 0 ] = Y[ v_slot ] * lambda_power_( v_slot, n ) + Y[ i_slot ] * p11n;
    trace.y[ 1 ] = eps_i_a * p11n + lambda_power_( i_slot, n - 1 );
    trace.pending = false;
  }
  return event_finish_( stop, end, kr, ebar, g, trace );
}

void
eprop_iaf_psc_exp::compute_gradient( const long t_spike,
  const long t_spike_previous,
  double& z_previous_buffer,
  double& eps_v,
  double& e_bar,
  double& e_bar_reg,
  double& eps_i,
  double& weight,
  const nest::CommonSynapseProperties& cp,
  nest::WeightOptimizer* optimizer,
  const bool is_flush_event,
  const bool previous_was_flush_event,
  double& gradient,
  long& remaining_steps_until_cutoff,
  long& decay_steps )
{
  const auto& ecp = static_cast< const nest::EpropSynapseCommonProperties& >( cp );
  const auto& opt_cp = *ecp.optimizer_cp_;
  const bool optimize_each_step = opt_cp.optimize_each_step_;

  // The previous spike entered the current of the receptor selected by the sign of the weight it carried.
  const bool excitatory = weight >= 0.0;
  const double P11 = excitatory ? V_.P11_ex_ : V_.P11_in_;
  const double P21 = excitatory ? V_.P21_ex_ : V_.P21_in_;

  const long isi_steps = t_spike - t_spike_previous;
  remaining_steps_until_cutoff = previous_was_flush_event ? remaining_steps_until_cutoff : get_eprop_isi_trace_cutoff();

  double z_current_buffer = 0.0;
  if ( not previous_was_flush_event )
  {
    gradient = 0.0;
    z_current_buffer = 1.0;
  }

  const long t_begin = t_spike_previous - 1;
  auto eprop_hist_it = get_eprop_history( t_begin );
  const long t_steps = std::min( remaining_steps_until_cutoff, isi_steps );
  const long t_end = t_begin + t_steps;

  for ( long t = t_begin; t < t_end; ++t, ++eprop_hist_it )
  {
    require_eprop_history_entry( eprop_hist_it, t );

    // presynaptic spike arriving in step t; a spike stamped s is seen by the neuron in step s
    const double z = z_previous_buffer;
    z_previous_buffer = z_current_buffer;
    z_current_buffer = 0.0;

    const double psi = eprop_hist_it->surrogate_gradient_;
    const double L = eprop_hist_it->learning_signal_;
    const double fr_reg = eprop_hist_it->firing_rate_reg_;

    // v^t depends on I^{t-1}, so eps_v uses eps_i before the spike of this step enters it
    eps_v = V_.P22_ * eps_v + P21 * eps_i;
    eps_i = P11 * eps_i + z;

    const double e = psi * eps_v;
    e_bar = P_.kappa_ * e_bar + e;
    e_bar_reg = P_.kappa_reg_ * e_bar_reg + ( 1.0 - P_.kappa_reg_ ) * e;

    const double gradient_increment = L * e_bar + fr_reg * e_bar_reg;

    if ( optimize_each_step )
    {
      gradient = gradient_increment;
      weight = optimizer->optimized_weight( opt_cp, t + 1, gradient, weight );
    }
    else
    {
      gradient += gradient_increment;
    }
  }

  remaining_steps_until_cutoff -= t_steps;
  const long remaining_steps_until_event = isi_steps - t_steps;
  decay_steps += remaining_steps_until_event;

  if ( not is_flush_event and decay_steps > 0 )
  {
    // closed-form propagation of (eps_v, eps_i) and the filters over the steps after the cutoff, from tables of
    // powers: P21(n h) = P21 (P22^n - P11^n) / (P22 - P11), or n P21 P22^(n-1) if P11 = P22
    const int m = excitatory ? 1 : 2;
    const double n = static_cast< double >( decay_steps );
    const double p22n = std::pow( V_.P22_, n );
    const double p11n = std::pow( P11, n );
    const double p21n = V_.P22_ != P11 ? P21 * ( p22n - p11n ) / ( V_.P22_ - P11 )
                                       : P21 * static_cast< double >( decay_steps ) * p22n / V_.P22_;
    eps_v = p22n * eps_v + p21n * eps_i;
    eps_i *= p11n;
    e_bar *= std::pow( P_.kappa_, n );
    e_bar_reg *= std::pow( P_.kappa_reg_, n );
    decay_steps = 0;
  }

  if ( not is_flush_event and not optimize_each_step )
  {
    weight = optimizer->optimized_weight( opt_cp, t_end + remaining_steps_until_event, gradient, weight );
  }
}

}  // namespace nestgrad
