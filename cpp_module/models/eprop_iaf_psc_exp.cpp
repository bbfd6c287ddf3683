/*
 *  eprop_iaf_psc_exp.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_iaf_psc_exp.h"

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
  : C_m_( 250.0 )
  , c_reg_( 0.0 )
  , E_L_( -70.0 )
  , f_target_( 10.0 )
  , I_e_( 0.0 )
  , surrogate_gradient_function_( "piecewise_linear" )
  , surrogate_gradient_height_( 0.3 )
  , surrogate_gradient_width_( 1.0 )
  , t_ref_( 2.0 )
  , tau_m_( 10.0 )
  , tau_syn_ex_( 2.0 )
  , tau_syn_in_( 2.0 )
  , V_min_( -std::numeric_limits< double >::max() )
  , V_reset_( -70.0 - E_L_ )
  , V_th_( -55.0 - E_L_ )
  , kappa_( 0.97 )
  , kappa_reg_( 0.97 )
  , gradient_algorithm_( "step" )
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
  d[ nest::names::C_m ] = C_m_;
  d[ nest::names::c_reg ] = c_reg_;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::f_target ] = f_target_;
  d[ nest::names::I_e ] = I_e_;
  d[ nest::names::surrogate_gradient_function ] = surrogate_gradient_function_;
  d[ nest::names::surrogate_gradient_height ] = surrogate_gradient_height_;
  d[ nest::names::surrogate_gradient_width ] = surrogate_gradient_width_;
  d[ nest::names::t_ref ] = t_ref_;
  d[ nest::names::tau_m ] = tau_m_;
  d[ nest::names::tau_syn_ex ] = tau_syn_ex_;
  d[ nest::names::tau_syn_in ] = tau_syn_in_;
  d[ nest::names::V_min ] = V_min_ + E_L_;
  d[ nest::names::V_reset ] = V_reset_ + E_L_;
  d[ nest::names::V_th ] = V_th_ + E_L_;
  d[ nest::names::kappa ] = kappa_;
  d[ nest::names::kappa_reg ] = kappa_reg_;
  d[ "gradient_algorithm" ] = gradient_algorithm_;
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
  nest::update_value_param( d, nest::names::c_reg, c_reg_, node );
  nest::update_value_param( d, nest::names::f_target, f_target_, node );
  nest::update_value_param( d, nest::names::I_e, I_e_, node );
  nest::update_value_param( d, nest::names::surrogate_gradient_function, surrogate_gradient_function_, node );
  nest::update_value_param( d, nest::names::surrogate_gradient_height, surrogate_gradient_height_, node );
  nest::update_value_param( d, nest::names::surrogate_gradient_width, surrogate_gradient_width_, node );
  nest::update_value_param( d, nest::names::t_ref, t_ref_, node );
  nest::update_value_param( d, nest::names::tau_m, tau_m_, node );
  nest::update_value_param( d, nest::names::tau_syn_ex, tau_syn_ex_, node );
  nest::update_value_param( d, nest::names::tau_syn_in, tau_syn_in_, node );
  nest::update_value_param( d, nest::names::kappa, kappa_, node );
  nest::update_value_param( d, nest::names::kappa_reg, kappa_reg_, node );
  nest::update_value_param( d, "gradient_algorithm", gradient_algorithm_, node );

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
  if ( not( c_reg_ >= 0.0 ) )
  {
    throw nest::BadProperty( "c_reg >= 0 required (got " + std::to_string( c_reg_ ) + ")." );
  }
  if ( not( f_target_ >= 0.0 ) )
  {
    throw nest::BadProperty( "f_target >= 0 required (got " + std::to_string( f_target_ ) + " Hz)." );
  }
  if ( not( kappa_ >= 0.0 and kappa_ <= 1.0 ) )
  {
    throw nest::BadProperty( "0 <= kappa <= 1 required (got " + std::to_string( kappa_ ) + ")." );
  }
  if ( not( kappa_reg_ >= 0.0 and kappa_reg_ <= 1.0 ) )
  {
    throw nest::BadProperty( "0 <= kappa_reg <= 1 required (got " + std::to_string( kappa_reg_ ) + ")." );
  }
  if ( not( surrogate_gradient_height_ > 0.0 ) )
  {
    throw nest::BadProperty( "surrogate_gradient_height > 0 required." );
  }
  if ( gradient_algorithm_ != "step" and gradient_algorithm_ != "event" )
  {
    throw nest::BadProperty( "gradient_algorithm must be \"step\" or \"event\" (got \"" + gradient_algorithm_ + "\")." );
  }
  if ( not( surrogate_gradient_width_ > 0.0 ) )
  {
    throw nest::BadProperty( "surrogate_gradient_width > 0 required." );
  }
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
  EpropArchivingNodeRecurrent::get_status( d );
  P_.get( d );
  S_.get( d, P_ );
  d[ nest::names::recordables ] = recordablesMap_.get_list();
}

void
eprop_iaf_psc_exp::set_status( const Dictionary& d )
{
  // Work on copies so that an invalid value leaves the neuron unchanged.
  Parameters_ ptmp = P_;
  const double delta_EL = ptmp.set( d, this );
  State_ stmp = S_;
  stmp.set( d, ptmp, delta_EL, this );
  const auto surrogate = find_surrogate_gradient( ptmp.surrogate_gradient_function_ );  // throws on unknown names

  EpropArchivingNodeRecurrent::set_status( d );
  P_ = ptmp;
  S_ = stmp;
  compute_surrogate_gradient_ = surrogate;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Construction and initialisation
 * ------------------------------------------------------------------------------------------------------------- */

eprop_iaf_psc_exp::eprop_iaf_psc_exp()
  : EpropArchivingNodeRecurrent()
  , P_()
  , S_()
  , B_( *this )
{
  recordablesMap_.create();
}

eprop_iaf_psc_exp::eprop_iaf_psc_exp( const eprop_iaf_psc_exp& n )
  : EpropArchivingNodeRecurrent( n )
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
  sums_.clear();
  sums_next_ = 0;
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

  // Event-driven gradient: the running sums restart every segment_ steps, chosen so that every weight kappa^k and
  // (lambda/kappa)^k stays within a factor 100 (at most two digits lost in differences of running sums).
  V_.lambda_[ 0 ] = V_.P22_;
  V_.lambda_[ 1 ] = V_.P11_ex_;
  V_.lambda_[ 2 ] = V_.P11_in_;
  V_.kappa_f_[ 0 ] = P_.kappa_;
  V_.kappa_f_[ 1 ] = P_.kappa_reg_;
  double worst = 1.0;
  for ( int f = 0; f < 2; ++f )
  {
    const double kf = V_.kappa_f_[ f ];
    if ( kf > 0.0 and kf < 1.0 )
    {
      worst = std::min( worst, kf );
    }
    for ( int m = 0; m < 3; ++m )
    {
      const double r = kf > 0.0 ? V_.lambda_[ m ] / kf : 1.0;
      if ( r > 0.0 and r != 1.0 )
      {
        worst = std::min( worst, std::min( r, 1.0 / r ) );
      }
    }
  }
  V_.segment_ = worst < 1.0 ? std::max( 1L, static_cast< long >( std::log( 1e1 ) / -std::log( worst ) ) ) : 1024L;
  V_.event_driven_ = P_.gradient_algorithm_ == "event";
  const long S = V_.segment_;
  auto powers = []( double base, long n )
  {
    std::vector< double > table( n + 1, 1.0 );
    for ( long k = 1; k <= n; ++k )
    {
      table[ k ] = std::pow( base, static_cast< double >( k ) );
    }
    return table;
  };
  for ( int f = 0; f < 2; ++f )
  {
    const double kf = V_.kappa_f_[ f ];
    V_.kappa_pow_[ f ] = powers( kf, S );
    V_.kappa_inv_pow_[ f ] = powers( kf > 0.0 ? 1.0 / kf : 0.0, S );
    for ( int m = 0; m < 3; ++m )
    {
      V_.ratio_pow_[ f ][ m ] = powers( kf > 0.0 ? V_.lambda_[ m ] / kf : 0.0, S );
    }
  }
  for ( int m = 0; m < 3; ++m )
  {
    V_.lambda_pow_[ m ] = powers( V_.lambda_[ m ], S );
    V_.lambda_inv_pow_[ m ] = powers( 1.0 / V_.lambda_[ m ], S );
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
    else if ( flush_event_is_due( t ) )
    {
      nest::SpikeEvent se;
      se.set_flush_event_flag( true );
      nest::kernel().event_delivery_manager.send( *this, se, lag );
      set_last_event_time( t );
    }

    append_new_eprop_history_entry( t );
    write_surrogate_gradient_to_history( t, S_.surrogate_gradient_ );
    // the archiving node expects the target rate in spikes per ms
    write_firing_rate_reg_to_history( t, S_.z_, P_.f_target_ / 1000.0, P_.kappa_reg_, P_.c_reg_ );
    S_.learning_signal_ = get_learning_signal_from_history( t );

    S_.i_stim_ = B_.currents_.get_value( lag );
    B_.logger_.record_data( t );

    if ( V_.event_driven_ and eprop_indegree_ > 0 )
    {
      finalize_running_sums_( t - 2 );  // the learning signal of entry t - 2 is complete now
      if ( not eprop_history_.empty() )
      {
        const long keep_from = eprop_history_.front().t_ - 1;
        while ( not sums_.empty() and sums_.front().t < keep_from and sums_.front().t < sums_next_ - 1 )
        {
          sums_.pop_front();
        }
      }
    }
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
eprop_iaf_psc_exp::handle( nest::LearningSignalConnectionEvent& e )
{
  for ( auto it_event = e.begin(); it_event != e.end(); )
  {
    const long time_step = e.get_stamp().get_steps();
    const double weight = e.get_weight();
    const double error_signal = e.get_coeffvalue( it_event );  // advances the iterator
    write_learning_signal_to_history( time_step, weight * error_signal );
  }
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

bool
eprop_iaf_psc_exp::event_driven_applies_( const bool is_flush_event,
  const bool previous_was_flush_event,
  const bool optimize_each_step ) const
{
  // flush events, per-step optimization and tau_syn == tau_m (not a sum of geometric sequences) use the steps
  return V_.event_driven_ and not is_flush_event and not previous_was_flush_event
    and not optimize_each_step and V_.P11_ex_ != V_.P22_ and V_.P11_in_ != V_.P22_;
}

void
eprop_iaf_psc_exp::finalize_running_sums_( const long t )
{
  if ( eprop_history_.empty() )
  {
    return;
  }
  if ( sums_.empty() )
  {
    sums_next_ = std::max( sums_next_, eprop_history_.front().t_ );
  }
  const long S = V_.segment_;
  for ( long e = sums_next_; e <= t; ++e )
  {
    const auto it = get_eprop_history( e );
    const bool present = it != eprop_history_.end() and it->t_ == e;  // entries no window needs may be erased
    const double psi = present ? it->surrogate_gradient_ : 0.0;
    const double signal[ 2 ] = { present ? it->learning_signal_ : 0.0, present ? it->firing_rate_reg_ : 0.0 };
    const long k = e % S;
    const RunningSums_* prev = ( k > 0 and not sums_.empty() and sums_.back().t == e - 1 ) ? &sums_.back() : nullptr;
    RunningSums_ entry;
    entry.t = e;
    entry.psi = psi;
    entry.signal[ 0 ] = signal[ 0 ];
    entry.signal[ 1 ] = signal[ 1 ];
    for ( int f = 0; f < 2; ++f )
    {
      const double wk = signal[ f ] * V_.kappa_pow_[ f ][ k ];
      entry.M[ f ] = ( prev ? prev->M[ f ] : 0.0 ) + wk;
      for ( int m = 0; m < 3; ++m )
      {
        entry.P[ f ][ m ] = ( prev ? prev->P[ f ][ m ] : 0.0 ) + psi * V_.ratio_pow_[ f ][ m ][ k ];
        entry.N[ f ][ m ] = ( prev ? prev->N[ f ][ m ] : 0.0 ) + wk * entry.P[ f ][ m ];
      }
    }
    sums_.push_back( entry );
  }
  sums_next_ = std::max( sums_next_, t + 1 );
}

double
eprop_iaf_psc_exp::table_pow_( const std::vector< double >& table, long n ) const
{
  const long S = V_.segment_;
  double result = table[ n % S ];
  for ( long q = n / S; q > 0; --q )
  {
    result *= table[ S ];
  }
  return result;
}

void
eprop_iaf_psc_exp::window_sums_( long a,
  const long b,
  double ebar[ 2 ],
  const double Y[ 3 ],
  const long tau,
  double total[ 2 ] ) const
{
  const long S = V_.segment_;
  const long first = sums_.empty() ? sums_next_ : sums_.front().t;
  // lambda_m^(R - tau) for the segment R of the current part; R - tau > -S for the first part, then grows by S
  long R = ( a / S ) * S;
  double lam_R[ 3 ];
  for ( int m = 0; m < 3; ++m )
  {
    lam_R[ m ] = R >= tau ? table_pow_( V_.lambda_pow_[ m ], R - tau ) : V_.lambda_inv_pow_[ m ][ tau - R ];
  }
  while ( a < b )
  {
    const long end = std::min( b, R + S );
    if ( end - 1 < first or end - 1 - first >= static_cast< long >( sums_.size() ) )
    {
      throw nest::KernelException( "eprop_iaf_psc_exp: running sums missing for entry " + std::to_string( end - 1 ) );
    }
    const RunningSums_& eb = sums_[ end - 1 - first ];
    const RunningSums_* ea = ( a > R and a - 1 >= first ) ? &sums_[ a - 1 - first ] : nullptr;
    for ( int f = 0; f < 2; ++f )
    {
      const auto& kpow = V_.kappa_pow_[ f ];
      const double dM = eb.M[ f ] - ( ea ? ea->M[ f ] : 0.0 );
      // kappa^(R - a + 1) = kappa * kappa^-(a - R)
      double sum = ebar[ f ] * V_.kappa_f_[ f ] * V_.kappa_inv_pow_[ f ][ a - R ] * dM;
      double new_ebar = ebar[ f ] * kpow[ end - a ];
      for ( int m = 0; m < 3; ++m )
      {
        if ( Y[ m ] == 0.0 )
        {
          continue;
        }
        const double prev_P = ea ? ea->P[ f ][ m ] : 0.0;
        const double prev_N = ea ? ea->N[ f ][ m ] : 0.0;
        const double coef = Y[ m ] * lam_R[ m ];
        sum += coef * ( ( eb.N[ f ][ m ] - prev_N ) - prev_P * dM );
        new_ebar += coef * kpow[ end - 1 - R ] * ( eb.P[ f ][ m ] - prev_P );
      }
      total[ f ] += sum;
      ebar[ f ] = new_ebar;
    }
    a = end;
    R += S;
    for ( int m = 0; m < 3; ++m )
    {
      lam_R[ m ] *= V_.lambda_pow_[ m ][ S ];
    }
  }
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
  if ( not event_driven_applies_( is_flush_event, previous_was_flush_event, opt_cp.optimize_each_step_ ) )
  {
    compute_gradient_by_steps_( t_spike, t_spike_previous, z_previous_buffer, eps_v, e_bar, e_bar_reg, eps_i, weight,
      cp, optimizer, is_flush_event, previous_was_flush_event, gradient, remaining_steps_until_cutoff, decay_steps );
    return;
  }
  // Event-driven: the synapse's slots hold the trace components at the window start a (eps_v slot: the P22 term,
  // epsilon slot: the P11 term of the weight's sign), the filtered trace at a - 1 (e_bar) and the regularisation
  // trace at a - 1 (e_bar_reg).
  const long a = t_spike_previous - 1;
  const long stop = t_spike - 1;
  const long cutoff = get_eprop_isi_trace_cutoff();
  const long end = cutoff >= stop - a ? stop : a + cutoff;
  if ( end <= a )
  {
    // an empty gradient window (cutoff 0): the step-by-step loop handles it
    compute_gradient_by_steps_( t_spike, t_spike_previous, z_previous_buffer, eps_v, e_bar, e_bar_reg, eps_i, weight,
      cp, optimizer, is_flush_event, previous_was_flush_event, gradient, remaining_steps_until_cutoff, decay_steps );
    return;
  }
  finalize_running_sums_( end - 1 );

  const bool excitatory = weight >= 0.0;
  const int own = excitatory ? 1 : 2;
  double Y[ 3 ] = { eps_v, 0.0, 0.0 };
  Y[ own ] = eps_i;
  const double kr = P_.kappa_reg_;
  double ebar[ 2 ] = { e_bar, kr < 1.0 ? e_bar_reg / ( 1.0 - kr ) : 0.0 };

  // entry a still sees the old trace (the new spike enters at a + 1): one step, directly
  const long first = sums_.front().t;
  const RunningSums_& ra = sums_[ a - first ];
  const double e_a = ra.psi * ( Y[ 0 ] + Y[ 1 ] + Y[ 2 ] );
  ebar[ 0 ] = P_.kappa_ * ebar[ 0 ] + e_a;
  ebar[ 1 ] = kr * ebar[ 1 ] + e_a;
  double g[ 2 ] = { ra.signal[ 0 ] * ebar[ 0 ], ra.signal[ 1 ] * ebar[ 1 ] };
  const double P11 = excitatory ? V_.P11_ex_ : V_.P11_in_;
  const double P21 = excitatory ? V_.P21_ex_ : V_.P21_in_;
  const double c = P21 / ( V_.P22_ - P11 );  // eps_v += c (P22^(t-a-1) - P11^(t-a-1))
  Y[ 0 ] += c / V_.P22_;
  Y[ own ] -= c / P11;
  if ( end > a + 1 )
  {
    window_sums_( a + 1, end, ebar, Y, a, g );
  }
  gradient = g[ 0 ] + ( 1.0 - kr ) * g[ 1 ];

  // carry the state to the next window's start (stop): traces decay, filtered traces decay beyond the cutoff
  for ( int m = 0; m < 3; ++m )
  {
    Y[ m ] *= table_pow_( V_.lambda_pow_[ m ], stop - a );
  }
  e_bar = ebar[ 0 ] * table_pow_( V_.kappa_pow_[ 0 ], stop - end );
  eps_v = Y[ 0 ];
  eps_i = Y[ own ];
  e_bar_reg = ( 1.0 - kr ) * ebar[ 1 ] * table_pow_( V_.kappa_pow_[ 1 ], stop - end );
  remaining_steps_until_cutoff = 0;
  decay_steps = 0;
  weight = optimizer->optimized_weight( opt_cp, stop, gradient, weight );
}

void
eprop_iaf_psc_exp::compute_gradient_by_steps_( const long t_spike,
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
    const double p22n = table_pow_( V_.lambda_pow_[ 0 ], decay_steps );
    const double p11n = table_pow_( V_.lambda_pow_[ m ], decay_steps );
    const double p21n = V_.P22_ != P11 ? P21 * ( p22n - p11n ) / ( V_.P22_ - P11 )
                                       : P21 * static_cast< double >( decay_steps ) * p22n / V_.P22_;
    eps_v = p22n * eps_v + p21n * eps_i;
    eps_i *= p11n;
    e_bar *= table_pow_( V_.kappa_pow_[ 0 ], decay_steps );
    e_bar_reg *= table_pow_( V_.kappa_pow_[ 1 ], decay_steps );
    decay_steps = 0;
  }

  if ( not is_flush_event and not optimize_each_step )
  {
    weight = optimizer->optimized_weight( opt_cp, t_end + remaining_steps_until_event, gradient, weight );
  }
}

}  // namespace nestgrad
