/*
 *  eprop_glif3_psc.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_glif3_psc.h"

#include <cmath>
#include <limits>
#include <tuple>

// NEST public headers
#include "dict_util.h"
#include "exceptions.h"
#include "iaf_propagator.h"
#include "kernel_manager.h"
#include "nest_impl.h"
#include "numerics.h"
#include "universal_data_logger_impl.h"

namespace nestgrad
{

void
register_eprop_glif3_psc( const std::string& name )
{
  nest::register_node_model< eprop_glif3_psc >( name );
}

nest::RecordablesMap< eprop_glif3_psc > eprop_glif3_psc::recordablesMap_;

}  // namespace nestgrad

namespace nest
{
template <>
void
RecordablesMap< ::nestgrad::eprop_glif3_psc >::create()
{
  insert_( names::eprop_history_duration, &::nestgrad::eprop_glif3_psc::get_eprop_history_duration );
  insert_( names::learning_signal, &::nestgrad::eprop_glif3_psc::get_learning_signal_ );
  insert_( names::surrogate_gradient, &::nestgrad::eprop_glif3_psc::get_surrogate_gradient_ );
  insert_( names::V_m, &::nestgrad::eprop_glif3_psc::get_V_m_ );
  insert_( names::I_syn, &::nestgrad::eprop_glif3_psc::get_I_syn_ );
  insert_( names::ASCurrents_sum, &::nestgrad::eprop_glif3_psc::get_asc_sum_ );
}
}  // namespace nest

namespace nestgrad
{

namespace
{
std::string
vector_to_string( const std::vector< double >& v )
{
  std::string s = "[";
  for ( size_t i = 0; i < v.size(); ++i )
  {
    s += ( i ? ", " : "" ) + std::to_string( v[ i ] );
  }
  return s + "]";
}

// R = R M for 5 x 5 matrices (powers of the free-step propagator beyond the cutoff)
void
multiply_5x5( double R[ 5 ][ 5 ], const double M[ 5 ][ 5 ] )
{
  double out[ 5 ][ 5 ];
  for ( int i = 0; i < 5; ++i )
  {
    for ( int j = 0; j < 5; ++j )
    {
      double s = 0.0;
      for ( int k = 0; k < 5; ++k )
      {
        s += R[ i ][ k ] * M[ k ][ j ];
      }
      out[ i ][ j ] = s;
    }
  }
  std::copy( &out[ 0 ][ 0 ], &out[ 0 ][ 0 ] + 25, &R[ 0 ][ 0 ] );
}
}  // namespace

/* ---------------------------------------------------------------------------------------------------------------
 * Defaults: glif_psc's, with four receptor ports
 * ------------------------------------------------------------------------------------------------------------- */

eprop_glif3_psc::Parameters_::Parameters_()
  : C_m_( 58.72 )
  , g_( 9.43 )
  , E_L_( -78.85 )
  , th_inf_( -51.68 - -78.85 )  // V_th = -51.68 mV
  , V_reset_( 0.0 )               // V_reset = E_L
  , t_ref_( 3.75 )
  , I_e_( 0.0 )
  , asc_init_( { 0.0, 0.0 } )
  , asc_decay_( { 0.003, 0.1 } )
  , asc_amps_( { -9.18, -198.94 } )
  , asc_r_( { 1.0, 1.0 } )
  , tau_syn_( { 2.0, 2.0, 2.0, 2.0 } )
  , event_segment_steps_( 32 )
  , has_connections_( false )
{
}

eprop_glif3_psc::State_::State_( const Parameters_& p )
  : U_( 0.0 )
  , asc_sum_( 0.0 )
  , I_syn_( 0.0 )
  , i_stim_( 0.0 )
  , y1_( p.n_receptors(), 0.0 )
  , y2_( p.n_receptors(), 0.0 )
  , refractory_steps_( 0 )
  , surrogate_gradient_( 0.0 )
  , learning_signal_( 0.0 )
{
  for ( size_t j = 0; j < n_asc; ++j )
  {
    asc_[ j ] = p.asc_init_[ j ];
  }
}

eprop_glif3_psc::Buffers_::Buffers_( eprop_glif3_psc& n )
  : logger_( n )
{
}

eprop_glif3_psc::Buffers_::Buffers_( const Buffers_&, eprop_glif3_psc& n )
  : logger_( n )
{
}

/* ---------------------------------------------------------------------------------------------------------------
 * Getters and setters (user units: mV absolute)
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_glif3_psc::Parameters_::get( Dictionary& d ) const
{
  d[ nest::names::C_m ] = C_m_;
  d[ nest::names::g ] = g_;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::V_th ] = th_inf_ + E_L_;
  d[ nest::names::V_reset ] = V_reset_ + E_L_;
  d[ nest::names::t_ref ] = t_ref_;
  d[ nest::names::I_e ] = I_e_;
  d[ nest::names::asc_init ] = asc_init_;
  d[ nest::names::asc_decay ] = asc_decay_;
  d[ nest::names::asc_amps ] = asc_amps_;
  d[ nest::names::asc_r ] = asc_r_;
  d[ nest::names::tau_syn ] = tau_syn_;
  d[ "event_segment_steps" ] = event_segment_steps_;
  d[ nest::names::has_connections ] = has_connections_;
}

double
eprop_glif3_psc::Parameters_::set( const Dictionary& d, nest::Node* node )
{
  // voltages are relative to E_L: a voltage not given keeps its absolute value when E_L changes (NEST's convention)
  const double E_L_old = E_L_;
  nest::update_value_param( d, nest::names::E_L, E_L_, node );
  const double delta_EL = E_L_ - E_L_old;
  th_inf_ -= nest::update_value_param( d, nest::names::V_th, th_inf_, node ) ? E_L_ : delta_EL;
  V_reset_ -= nest::update_value_param( d, nest::names::V_reset, V_reset_, node ) ? E_L_ : delta_EL;

  nest::update_value_param( d, nest::names::C_m, C_m_, node );
  nest::update_value_param( d, nest::names::g, g_, node );
  nest::update_value_param( d, nest::names::t_ref, t_ref_, node );
  nest::update_value_param( d, nest::names::I_e, I_e_, node );
  d.update_value( nest::names::asc_init, asc_init_ );
  d.update_value( nest::names::asc_decay, asc_decay_ );
  d.update_value( nest::names::asc_amps, asc_amps_ );
  d.update_value( nest::names::asc_r, asc_r_ );
  const size_t old_n_receptors = n_receptors();
  d.update_value( nest::names::tau_syn, tau_syn_ );
  d.update_value( "event_segment_steps", event_segment_steps_ );
  // the running products' bound, checked here so that a bad value fails now rather than at the next Simulate
  if ( not( event_segment_steps_ >= 2 and event_segment_steps_ <= ( 1L << EventProductHistory::max_shift )
         and ( event_segment_steps_ & ( event_segment_steps_ - 1 ) ) == 0 ) )
  {
    throw nest::BadProperty( "event_segment_steps must be 2, 4, 8, 16 or 32 (got "
      + std::to_string( event_segment_steps_ ) + ")." );
  }

  if ( not( C_m_ > 0.0 ) )
  {
    throw nest::BadProperty( "C_m > 0 required (got " + std::to_string( C_m_ ) + " pF)." );
  }
  if ( not( g_ > 0.0 ) )
  {
    throw nest::BadProperty( "g > 0 required (got " + std::to_string( g_ ) + " nS)." );
  }
  if ( not( t_ref_ >= 0.0 ) )
  {
    throw nest::BadProperty( "t_ref >= 0 required (got " + std::to_string( t_ref_ ) + " ms)." );
  }
  if ( not( V_reset_ < th_inf_ ) )
  {
    throw nest::BadProperty( "V_reset < V_th required (got V_reset = " + std::to_string( V_reset_ + E_L_ )
      + " mV, V_th = " + std::to_string( th_inf_ + E_L_ ) + " mV)." );
  }
  const std::pair< const char*, const std::vector< double >* > asc[] = {
    { "asc_init", &asc_init_ }, { "asc_decay", &asc_decay_ }, { "asc_amps", &asc_amps_ }, { "asc_r", &asc_r_ }
  };
  for ( const auto& [ name, values ] : asc )
  {
    if ( values->size() != n_asc )
    {
      throw nest::BadProperty( std::string( name ) + " must have exactly 2 entries, one per after-spike current (got "
        + vector_to_string( *values ) + ")." );
    }
    for ( const double v : *values )
    {
      if ( not std::isfinite( v ) )
      {
        throw nest::BadProperty( std::string( name ) + " must be finite (got " + vector_to_string( *values ) + ")." );
      }
    }
  }
  for ( size_t j = 0; j < n_asc; ++j )
  {
    if ( not( asc_decay_[ j ] > 0.0 ) )
    {
      throw nest::BadProperty( "asc_decay > 0 required (got " + vector_to_string( asc_decay_ ) + " 1/ms)." );
    }
    if ( not( asc_r_[ j ] >= 0.0 and asc_r_[ j ] <= 1.0 ) )
    {
      throw nest::BadProperty( "asc_r in [0, 1] required (got " + vector_to_string( asc_r_ ) + ")." );
    }
  }
  if ( tau_syn_.empty() )
  {
    throw nest::BadProperty( "tau_syn needs at least one entry (one per receptor port)." );
  }
  for ( const double tau : tau_syn_ )
  {
    if ( not( tau > 0.0 ) )
    {
      throw nest::BadProperty( "tau_syn > 0 required for every port (got " + vector_to_string( tau_syn_ ) + " ms)." );
    }
  }
  if ( n_receptors() < old_n_receptors and has_connections_ )
  {
    throw nest::BadProperty( "tau_syn: the neuron has connections, its number of receptor ports cannot shrink." );
  }
  return delta_EL;
}

void
eprop_glif3_psc::State_::get( Dictionary& d, const Parameters_& p ) const
{
  d[ nest::names::V_m ] = U_ + p.E_L_;
  d[ nest::names::ASCurrents ] = std::vector< double >( asc_, asc_ + n_asc );
  d[ nest::names::surrogate_gradient ] = surrogate_gradient_;
  d[ nest::names::learning_signal ] = learning_signal_;
}

void
eprop_glif3_psc::State_::set( const Dictionary& d, const Parameters_& p, const double delta_EL, nest::Node* node )
{
  U_ -= nest::update_value_param( d, nest::names::V_m, U_, node ) ? p.E_L_ : delta_EL;
  std::vector< double > asc( asc_, asc_ + n_asc );
  if ( d.update_value( nest::names::ASCurrents, asc ) )
  {
    if ( asc.size() != n_asc )
    {
      throw nest::BadProperty( "ASCurrents must have exactly 2 entries (got " + vector_to_string( asc ) + ")." );
    }
    std::copy( asc.begin(), asc.end(), asc_ );
  }
  y1_.resize( p.n_receptors(), 0.0 );
  y2_.resize( p.n_receptors(), 0.0 );
}

void
eprop_glif3_psc::get_status( Dictionary& d ) const
{
  P_.get( d );
  S_.get( d, P_ );
  EpropNestmlNode::get_status( d );
  d[ nest::names::recordables ] = recordablesMap_.get_list();
}

void
eprop_glif3_psc::set_status( const Dictionary& d )
{
  // work on copies so that an invalid value leaves the neuron unchanged
  Parameters_ ptmp = P_;
  const double delta_EL = ptmp.set( d, this );
  State_ stmp = S_;
  stmp.set( d, ptmp, delta_EL, this );

  EpropNestmlNode::set_status( d );
  P_ = ptmp;
  S_ = stmp;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Construction and initialisation
 * ------------------------------------------------------------------------------------------------------------- */

eprop_glif3_psc::eprop_glif3_psc()
  : EpropNestmlNode()
  , P_()
  , S_( P_ )
  , B_( *this )
  , record_t0_( 0 )
{
  recordablesMap_.create();
}

eprop_glif3_psc::eprop_glif3_psc( const eprop_glif3_psc& n )
  : EpropNestmlNode( n )
  , P_( n.P_ )
  , S_( n.S_ )
  , B_( n.B_, *this )
  , record_t0_( 0 )
{
}

void
eprop_glif3_psc::init_buffers_()
{
  B_.spikes_.clear();
  B_.currents_.clear();
  B_.logger_.reset();
  step_records_.clear();
  record_t0_ = 0;
}

void
eprop_glif3_psc::pre_run_hook()
{
  B_.logger_.init();
  eprop_pre_run_hook_();

  const double h = nest::Time::get_resolution().get_ms();
  const double tau_m = P_.C_m_ / P_.g_;
  V_.P33_ = std::exp( -h / tau_m );
  V_.P30_ = 1 / P_.C_m_ * ( 1 - V_.P33_ ) * tau_m;
  for ( size_t j = 0; j < n_asc; ++j )
  {
    V_.asc_decay_rate_[ j ] = std::exp( -P_.asc_decay_[ j ] * h );
    V_.asc_stable_coeff_[ j ] = ( ( 1.0 / P_.asc_decay_[ j ] ) / h ) * ( 1.0 - V_.asc_decay_rate_[ j ] );
    V_.asc_refr_decay_[ j ] = P_.asc_r_[ j ] * std::exp( -P_.asc_decay_[ j ] * P_.t_ref_ );
  }

  const size_t n = P_.n_receptors();
  V_.P11_.resize( n );
  V_.P21_.resize( n );
  V_.P31_.resize( n );
  V_.P32_.resize( n );
  V_.psc_initial_.resize( n );
  S_.y1_.resize( n, 0.0 );
  S_.y2_.resize( n, 0.0 );
  B_.spikes_.resize( n );
  for ( size_t r = 0; r < n; ++r )
  {
    V_.P11_[ r ] = std::exp( -h / P_.tau_syn_[ r ] );
    V_.P21_[ r ] = h * V_.P11_[ r ];
    std::tie( V_.P31_[ r ], V_.P32_[ r ] ) = ::IAFPropagatorAlpha( P_.tau_syn_[ r ], tau_m, P_.C_m_ ).evaluate( h );
    V_.psc_initial_[ r ] = 1.0 * numerics::e / P_.tau_syn_[ r ];
    B_.spikes_[ r ].resize();
  }
  V_.refractory_counts_ = nest::Time( nest::Time::ms( P_.t_ref_ ) ).get_steps();
  eprop_event_pre_run_hook_();  // needs the propagators
}

/* ---------------------------------------------------------------------------------------------------------------
 * Update: the order of operations of glif_psc (GLIF3), then the e-prop bookkeeping of the step
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_glif3_psc::update( nest::Time const& origin, const long from, const long to )
{
  const size_t n = P_.n_receptors();
  for ( long lag = from; lag < to; ++lag )
  {
    const long t = origin.get_steps() + lag;
    StepRecord record { { 0.0, 0.0 }, S_.refractory_steps_ > 0, false };
    double psi = 0.0;

    if ( S_.refractory_steps_ == 0 )
    {
      S_.asc_sum_ = 0.0;
      for ( size_t j = 0; j < n_asc; ++j )
      {
        S_.asc_sum_ += V_.asc_stable_coeff_[ j ] * S_.asc_[ j ];
        S_.asc_[ j ] = S_.asc_[ j ] * V_.asc_decay_rate_[ j ];
        record.asc_jump[ j ] = P_.asc_amps_[ j ] + ( V_.asc_refr_decay_[ j ] - 1.0 ) * S_.asc_[ j ];
      }
      S_.U_ = S_.U_ * V_.P33_ + ( S_.i_stim_ + P_.I_e_ + S_.asc_sum_ ) * V_.P30_;
      S_.I_syn_ = 0.0;
      for ( size_t r = 0; r < n; ++r )
      {
        S_.U_ += V_.P31_[ r ] * S_.y1_[ r ] + V_.P32_[ r ] * S_.y2_[ r ];
        S_.I_syn_ += S_.y2_[ r ];
      }

      psi = eprop_surrogate_gradient_( true, S_.U_, P_.th_inf_ );
      if ( S_.U_ > P_.th_inf_ )
      {
        record.spiked = true;
        S_.refractory_steps_ = V_.refractory_counts_;
        for ( size_t j = 0; j < n_asc; ++j )
        {
          S_.asc_[ j ] = P_.asc_amps_[ j ] + S_.asc_[ j ] * V_.asc_refr_decay_[ j ];
        }
        S_.U_ = P_.V_reset_;
        set_spiketime( nest::Time::step( t + 1 ) );
        nest::SpikeEvent se;
        nest::kernel().event_delivery_manager.send( *this, se, lag );
      }
    }
    else
    {
      --S_.refractory_steps_;  // U and the after-spike currents stay frozen
      psi = eprop_surrogate_gradient_( false, S_.U_, P_.th_inf_ );
    }

    // alpha currents evolve also while refractory; spikes of this step enter at its end
    for ( size_t r = 0; r < n; ++r )
    {
      S_.y2_[ r ] = V_.P21_[ r ] * S_.y1_[ r ] + V_.P11_[ r ] * S_.y2_[ r ];
      S_.y1_[ r ] *= V_.P11_[ r ];
      S_.y1_[ r ] += V_.psc_initial_[ r ] * B_.spikes_[ r ].get_value( lag );
    }

    S_.surrogate_gradient_ = psi;
    current_record_ = record;
    S_.learning_signal_ = eprop_end_of_step_( t, lag, psi );

    // keep a record for every step that has an e-prop history entry, and no record older than the history
    if ( eprop_history_.empty() )
    {
      step_records_.clear();
      record_t0_ = t + 1;
    }
    else
    {
      if ( step_records_.empty() )
      {
        record_t0_ = t;
      }
      step_records_.push_back( record );
      while ( record_t0_ < eprop_history_.front().t_ )
      {
        step_records_.pop_front();
        ++record_t0_;
      }
    }

    S_.i_stim_ = B_.currents_.get_value( lag );
    B_.logger_.record_data( t );
  }
}

const eprop_glif3_psc::StepRecord&
eprop_glif3_psc::step_record_( const long t ) const
{
  const long i = t - record_t0_;
  if ( i < 0 or i >= static_cast< long >( step_records_.size() ) )
  {
    throw nest::KernelException( get_name() + ": no step record for step " + std::to_string( t )
      + " (records cover " + std::to_string( record_t0_ ) + " .. "
      + std::to_string( record_t0_ + static_cast< long >( step_records_.size() ) - 1 ) + ")." );
  }
  return step_records_[ i ];
}

/* ---------------------------------------------------------------------------------------------------------------
 * Event handling
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_glif3_psc::handle( nest::SpikeEvent& e )
{
  assert( e.get_delay_steps() > 0 );
  B_.spikes_[ e.get_rport() - 1 ].add_value(
    e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() ),
    e.get_weight() * e.get_multiplicity() );
}

void
eprop_glif3_psc::handle( nest::CurrentEvent& e )
{
  assert( e.get_delay_steps() > 0 );
  B_.currents_.add_value( e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() ),
    e.get_weight() * e.get_current() );
}

void
eprop_glif3_psc::handle( nest::DataLoggingRequest& e )
{
  B_.logger_.handle( e );
}

/* ---------------------------------------------------------------------------------------------------------------
 * eprop_event_synapse: the per-step maps of the eligibility vector (y, I, U, A1, A2) of each port, the same
 * recursion as compute_gradient_vector() below, for the neuron's running products.
 * ------------------------------------------------------------------------------------------------------------- */

int
eprop_glif3_psc::eprop_event_ports_( std::vector< EventPortRecursion >& ports ) const
{
  const size_t n = P_.n_receptors();
  ports.assign( n, EventPortRecursion() );
  for ( size_t r = 0; r < n; ++r )
  {
    // the free step (not refractory, no spike, psi = 0): the decay beyond the cutoff
    EventPortRecursion& port = ports[ r ];
    port.n = 5;
    port.time_varying = true;
    port.J[ 0 ][ 0 ] = V_.P11_[ r ];
    port.J[ 1 ][ 0 ] = V_.P21_[ r ];
    port.J[ 1 ][ 1 ] = V_.P11_[ r ];
    port.J[ 2 ][ 0 ] = V_.P31_[ r ];
    port.J[ 2 ][ 1 ] = V_.P32_[ r ];
    port.J[ 2 ][ 2 ] = V_.P33_;
    for ( size_t j = 0; j < n_asc; ++j )
    {
      port.J[ 2 ][ 3 + j ] = V_.P30_ * V_.asc_stable_coeff_[ j ];
      port.J[ 3 + j ][ 3 + j ] = V_.asc_decay_rate_[ j ];
    }
    port.b[ 0 ] = V_.psc_initial_[ r ];
  }
  return static_cast< int >( n );
}

void
eprop_glif3_psc::event_step_map_( const size_t port, long, const double psi, double* A, double* h ) const
{
  // rows: y, I, U, A1, A2 (row-major 5 x 5); e = h . s[t-1]
  const EventPortRecursion& p = event_port_( port );
  std::fill( A, A + 25, 0.0 );
  A[ 0 ] = p.J[ 0 ][ 0 ];
  A[ 5 ] = p.J[ 1 ][ 0 ];
  A[ 6 ] = p.J[ 1 ][ 1 ];
  if ( current_record_.refractory )
  {
    // U and the after-spike currents are frozen; no eligibility
    A[ 12 ] = 1.0;
    A[ 18 ] = 1.0;
    A[ 24 ] = 1.0;
    std::fill( h, h + 5, 0.0 );
    return;
  }
  for ( int m = 0; m < 5; ++m )
  {
    A[ 10 + m ] = p.J[ 2 ][ m ];
    h[ m ] = psi * p.J[ 2 ][ m ];
  }
  for ( size_t j = 0; j < n_asc; ++j )
  {
    // eps_A = (rho at a spike) d eps_A + jump e
    const int row = 5 * ( 3 + static_cast< int >( j ) );
    for ( int m = 0; m < 5; ++m )
    {
      A[ row + m ] = current_record_.asc_jump[ j ] * h[ m ];
    }
    A[ row + 3 + j ] += ( current_record_.spiked ? V_.asc_refr_decay_[ j ] : 1.0 ) * p.J[ 3 + j ][ 3 + j ];
  }
}

void
eprop_glif3_psc::event_spike_input_( const size_t port, double, double* B, double& hz ) const
{
  // the spike enters y at the end of the step: no eligibility in that step
  std::fill( B, B + 5, 0.0 );
  B[ 0 ] = event_port_( port ).b[ 0 ];
  hz = 0.0;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Gradient of one eprop_vector_synapse between two presynaptic spikes.
 *
 * trace.eps holds (eps_y, eps_I, eps_U, eps_A1, eps_A2) of the connection's port (rport = receptor type, 1-based).
 * ------------------------------------------------------------------------------------------------------------- */

void
eprop_glif3_psc::compute_gradient_vector( const long t_spike,
  const long t_spike_previous,
  const size_t rport,
  EpropVectorTrace& trace,
  const bool is_flush_event,
  const bool previous_was_flush_event )
{
  const size_t r = rport - 1;
  const double P11 = V_.P11_[ r ];
  const double P21 = V_.P21_[ r ];
  const double P31 = V_.P31_[ r ];
  const double P32 = V_.P32_[ r ];
  const double b = V_.psc_initial_[ r ];
  const double P33 = V_.P33_;
  const double P30c[ n_asc ] = { V_.P30_ * V_.asc_stable_coeff_[ 0 ], V_.P30_ * V_.asc_stable_coeff_[ 1 ] };
  const double d[ n_asc ] = { V_.asc_decay_rate_[ 0 ], V_.asc_decay_rate_[ 1 ] };
  const double rho[ n_asc ] = { V_.asc_refr_decay_[ 0 ], V_.asc_refr_decay_[ 1 ] };
  const double kappa = eprop_kappa_();
  const double kappa_reg = eprop_kappa_reg_();

  double eps_y = trace.eps[ 0 ];
  double eps_I = trace.eps[ 1 ];
  double eps_U = trace.eps[ 2 ];
  double eps_A[ n_asc ] = { trace.eps[ 3 ], trace.eps[ 4 ] };
  double z_previous_buffer = trace.z_previous_buffer;
  double e_bar = trace.e_bar;
  double e_bar_reg = trace.e_bar_reg;
  long& remaining_steps_until_cutoff = trace.remaining_steps_until_cutoff;
  long& decay_steps = trace.decay_steps;

  const long isi_steps = t_spike - t_spike_previous;
  remaining_steps_until_cutoff = previous_was_flush_event ? remaining_steps_until_cutoff : get_eprop_isi_trace_cutoff();

  double z_current_buffer = 0.0;
  if ( not previous_was_flush_event )
  {
    trace.gradient = 0.0;
    z_current_buffer = 1.0;
  }
  double gradient = trace.gradient;

  const long t_begin = t_spike_previous - 1;
  const long t_steps = std::min( remaining_steps_until_cutoff, isi_steps );
  const long t_end = t_begin + t_steps;
  auto eprop_hist_it = get_eprop_history( t_begin );
  auto record_it = step_records_.cbegin();
  if ( t_steps > 0 )
  {
    // history and step records hold one entry per step of the window: checking its ends covers every step
    require_eprop_history_entry( eprop_hist_it, t_begin );
    const auto last = eprop_history_.end() - eprop_hist_it >= t_steps ? eprop_hist_it + ( t_steps - 1 ) : eprop_history_.end();
    require_eprop_history_entry( last, t_end - 1 );
    step_record_( t_begin );
    step_record_( t_end - 1 );
    record_it += t_begin - record_t0_;
  }

  for ( long t = t_begin; t < t_end; ++t, ++eprop_hist_it, ++record_it )
  {
    const StepRecord& record = *record_it;

    // presynaptic spike entering the synaptic current in step t
    const double z = z_previous_buffer;
    z_previous_buffer = z_current_buffer;
    z_current_buffer = 0.0;

    const double psi = eprop_hist_it->surrogate_gradient_;
    const double L = eprop_hist_it->learning_signal_;
    const double fr_reg = eprop_hist_it->firing_rate_reg_;

    double e = 0.0;
    if ( not record.refractory )
    {
      eps_U = P33 * eps_U + P30c[ 0 ] * eps_A[ 0 ] + P30c[ 1 ] * eps_A[ 1 ] + P31 * eps_y + P32 * eps_I;
      e = psi * eps_U;
      for ( size_t j = 0; j < n_asc; ++j )
      {
        eps_A[ j ] = ( record.spiked ? rho[ j ] : 1.0 ) * d[ j ] * eps_A[ j ] + record.asc_jump[ j ] * e;
      }
    }
    eps_I = P21 * eps_y + P11 * eps_I;
    eps_y = P11 * eps_y + b * z;

    e_bar = kappa * e_bar + e;
    e_bar_reg = kappa_reg * e_bar_reg + ( 1.0 - kappa_reg ) * e;
    gradient += L * e_bar + fr_reg * e_bar_reg;
  }

  remaining_steps_until_cutoff -= t_steps;
  const long remaining_steps_until_event = isi_steps - t_steps;
  decay_steps += remaining_steps_until_event;

  if ( not is_flush_event and decay_steps > 0 )
  {
    // past the cutoff: the propagator of a free step (not refractory, no spike) to the power decay_steps
    const double M0[ 5 ][ 5 ] = { { P11, 0.0, 0.0, 0.0, 0.0 },
      { P21, P11, 0.0, 0.0, 0.0 },
      { P31, P32, P33, P30c[ 0 ], P30c[ 1 ] },
      { 0.0, 0.0, 0.0, d[ 0 ], 0.0 },
      { 0.0, 0.0, 0.0, 0.0, d[ 1 ] } };
    double M[ 5 ][ 5 ];
    double R[ 5 ][ 5 ] = {};
    std::copy( &M0[ 0 ][ 0 ], &M0[ 0 ][ 0 ] + 25, &M[ 0 ][ 0 ] );
    for ( int i = 0; i < 5; ++i )
    {
      R[ i ][ i ] = 1.0;
    }
    for ( long k = decay_steps; k > 0; k >>= 1 )
    {
      if ( k & 1 )
      {
        multiply_5x5( R, M );
      }
      multiply_5x5( M, M );
    }
    const double old[ 5 ] = { eps_y, eps_I, eps_U, eps_A[ 0 ], eps_A[ 1 ] };
    double now[ 5 ];
    for ( int i = 0; i < 5; ++i )
    {
      now[ i ] = 0.0;
      for ( int j = 0; j < 5; ++j )
      {
        now[ i ] += R[ i ][ j ] * old[ j ];
      }
    }
    eps_y = now[ 0 ];
    eps_I = now[ 1 ];
    eps_U = now[ 2 ];
    eps_A[ 0 ] = now[ 3 ];
    eps_A[ 1 ] = now[ 4 ];
    const double steps = static_cast< double >( decay_steps );
    e_bar *= std::pow( kappa, steps );
    e_bar_reg *= std::pow( kappa_reg, steps );
    decay_steps = 0;
  }

  trace.eps[ 0 ] = eps_y;
  trace.eps[ 1 ] = eps_I;
  trace.eps[ 2 ] = eps_U;
  trace.eps[ 3 ] = eps_A[ 0 ];
  trace.eps[ 4 ] = eps_A[ 1 ];
  trace.z_previous_buffer = z_previous_buffer;
  trace.e_bar = e_bar;
  trace.e_bar_reg = e_bar_reg;
  trace.gradient = gradient;
}

}  // namespace nestgrad
