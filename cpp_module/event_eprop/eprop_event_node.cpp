/*
 *  eprop_event_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_event_node.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <string>

// NEST public headers
#include "eprop_archiving_node_recurrent_impl.h"
#include "event_delivery_manager_impl.h"
#include "exceptions.h"
#include "kernel_manager.h"

namespace nestgrad
{

namespace
{
// Longest segment (a power of two): a window that starts and ends inside one segment is summed step by step, longer
// ones cost one entry per segment crossed. Shorter if needed so that lambda^segment stays far from underflow.
constexpr int max_segment_shift = 5;  // 32 steps
constexpr double smallest_weight = 1e-200;

// Entries kept behind the step being updated for spikes still in transit (their window starts one step earlier).
long
transit_margin()
{
  return nest::kernel().connection_manager.get_min_delay() + 4;
}

}  // namespace

const double*
EpropEventNode::power_table_( const double base )
{
  // a block of the store's second level spans at most 2^(max_segment_shift + block_shift_) steps
  static_assert( max_segment_shift + EventHistoryStore::block_shift_ <= power_table_shift_ );
  // tables live as long as the module; a network has a handful of distinct constants
  static std::mutex mutex;
  static std::map< double, std::unique_ptr< double[] > > tables;
  const std::lock_guard< std::mutex > lock( mutex );  // pre_run_hook runs on all threads
  auto& table = tables[ base ];
  if ( not table )
  {
    table = std::make_unique< double[] >( power_table_steps_ + 1 );
    for ( long k = 0; k <= power_table_steps_; ++k )
    {
      table[ k ] = std::pow( base, static_cast< double >( k ) );
    }
  }
  return table.get();
}

EpropEventNode::EpropEventNode()
  : EpropArchivingNodeRecurrent()
{
}

EpropEventNode::EpropEventNode( const EpropEventNode& n )
  : EpropArchivingNodeRecurrent( n )
  , event_indegree_( 0 )
{
}

EpropEventNode::~EpropEventNode()
{
  if ( store_ )
  {
    EventHistoryStore::detach( store_ );
  }
}

long
EpropEventNode::event_window_end_( const long t_spike, const long t_spike_previous ) const
{
  if ( event_cutoff_ < 1 )
  {
    throw nest::BadProperty( get_name() + ": eprop_event_synapse requires eprop_isi_trace_cutoff >= one step." );
  }
  const long a = t_spike_previous - 1;
  const long stop = t_spike - 1;
  return event_cutoff_ >= stop - a ? stop : a + event_cutoff_;
}

void
EpropEventNode::get_status( Dictionary& d ) const
{
  nest::EpropArchivingNodeRecurrent< false >::get_status( d );
  d[ "event_synapse_refusal" ] = event_synapse_refusal();
  d[ "event_block_sums_used" ] = block_sums_used_;
}

void
EpropEventNode::handle( nest::LearningSignalConnectionEvent& e )
{
  for ( auto it_event = e.begin(); it_event != e.end(); )
  {
    const long time_step = e.get_stamp().get_steps();
    const double weight = e.get_weight();
    const double error_signal = e.get_coeffvalue( it_event );  // advances the iterator
    write_learning_signal_to_history( time_step, weight * error_signal );
    if ( event_history_active_() )
    {
      store_event_learning_signal_( time_step - 2, weight * error_signal );  // the entry NEST's history uses
    }
  }
}

EpropEventNode::surrogate_gradient_function
EpropEventNode::select_surrogate_gradient_( const std::string& name )
{
  try
  {
    return find_surrogate_gradient( name );
  }
  catch ( const nest::BadProperty& )
  {
    throw nest::BadProperty( get_name() + ": surrogate_gradient_function = \"" + name
      + "\" is unknown; known: arctan_derivative, exponential, fast_sigmoid_derivative, piecewise_linear." );
  }
}

void
EpropEventNode::send_flush_event_if_due_( const long t, const long lag )
{
  if ( flush_event_is_due( t ) )
  {
    nest::SpikeEvent se;
    se.set_flush_event_flag( true );
    nest::kernel().event_delivery_manager.send( *this, se, lag );
    set_last_event_time( t );
  }
}

double
EpropEventNode::eprop_history_step_( const long t,
  const double z,
  const double surrogate_gradient,
  const double f_target,
  const double kappa_reg,
  const double c_reg )
{
  append_new_eprop_history_entry( t );
  write_surrogate_gradient_to_history( t, surrogate_gradient );
  // the archiving node expects the target rate in spikes per ms
  write_firing_rate_reg_to_history( t, z, f_target / 1000.0, kappa_reg, c_reg );
  const double learning_signal = get_learning_signal_from_history( t );
  if ( not event_history_active_() )
  {
    return learning_signal;
  }
  if ( eprop_indegree_ == 0 )
  {
    // the archiving node updates the rate estimate only for eprop_synapse; same expression here
    const double dt = nest::Time::get_resolution().get_ms();
    f_av_ = kappa_reg * f_av_ + ( 1.0 - kappa_reg ) * z / dt;
    firing_rate_reg_ = c_reg * ( f_av_ - f_target / 1000.0 * dt );
  }
  return append_event_step_( t, surrogate_gradient, learning_signal );
}

double
EpropEventNode::append_event_step_( const long t, const double surrogate_gradient, const double learning_signal )
{
  append_event_entry_( t, surrogate_gradient, firing_rate_reg_ );
  finalize_event_entries_( t - 2 );  // the learning signal of entry t - 2 has arrived
  prune_event_history_( t );
  if ( eprop_indegree_ == 0 and t - 2 >= 0 )
  {
    return event_learning_signal_or_zero_( t - 2 );
  }
  return learning_signal;
}

int
EpropEventNode::event_filters_( const double kappa, const double kappa_reg, const bool regularize, double& reg_factor )
{
  if ( not( kappa > 0.0 and kappa <= 1.0 ) )
  {
    throw nest::BadProperty( "eprop_event_synapse requires 0 < kappa <= 1 (got " + std::to_string( kappa ) + ")." );
  }
  if ( regularize and not( kappa_reg > 0.0 and kappa_reg <= 1.0 ) )
  {
    throw nest::BadProperty(
      "eprop_event_synapse requires 0 < kappa_reg <= 1 when c_reg > 0 (got " + std::to_string( kappa_reg ) + ")." );
  }
  const bool merged = regularize and kappa_reg == kappa;
  reg_factor = merged ? 1.0 - kappa_reg : 0.0;
  return regularize and not merged ? 2 : 1;
}

void
EpropEventNode::configure_event_history_( const int n_lambda,
  const double* lambda,
  const double kappa,
  const double kappa_reg,
  const bool regularize )
{
  double reg_factor = 0.0;
  const int n_filters = event_filters_( kappa, kappa_reg, regularize, reg_factor );
  // distinct trace constants
  double distinct[ 3 ];
  int slot_of[ 3 ];
  int n_distinct = 0;
  for ( int m = 0; m < n_lambda; ++m )
  {
    if ( not( lambda[ m ] > 0.0 and lambda[ m ] < 1.0 ) )
    {
      throw nest::BadProperty( get_name() + ": trace constants must lie in (0, 1) for eprop_event_synapse." );
    }
    const auto found = std::find( distinct, distinct + n_distinct, lambda[ m ] );
    slot_of[ m ] = static_cast< int >( found - distinct );
    if ( found == distinct + n_distinct )
    {
      distinct[ n_distinct++ ] = lambda[ m ];
    }
  }
  const double kappas[ 2 ] = { kappa, n_filters == 2 ? kappa_reg : 0.0 };

  double worst = std::min( kappas[ 0 ], n_filters == 2 ? kappas[ 1 ] : 1.0 );
  for ( int m = 0; m < n_distinct; ++m )
  {
    worst = std::min( worst, distinct[ m ] );
  }
  int shift = max_segment_shift;
  while ( shift > 0 and worst < 1.0 and std::pow( worst, static_cast< double >( 1L << shift ) ) < smallest_weight )
  {
    --shift;
  }
  // the store's second level joins sums over blocks of 2^block_shift_ segments: the same test over a block
  const bool blocks_fit = worst == 1.0
    or std::pow( worst, static_cast< double >( ( 1L << shift ) << EventHistoryStore::block_shift_ ) ) >= smallest_weight;
  const long filter_stride = 3 + 4 * n_distinct;
  const long stride = 1 + n_filters * filter_stride;

  const bool same = n_distinct == n_lambda_ and n_filters == n_filters_ and shift == segment_shift_
    and stride == stride_ and kappas[ 0 ] == kappa_[ 0 ] and kappas[ 1 ] == kappa_[ 1 ]
    and std::equal( distinct, distinct + n_distinct, lambda_ ) and reg_factor == reg_factor_;
  std::copy( slot_of, slot_of + n_lambda, lambda_slot_of_ );
  if ( same and kappa_pow_[ 0 ] and store_ )
  {
    return;
  }
  if ( t_end_ > 0 )
  {
    throw nest::KernelException( get_name()
      + ": trace constants (tau_m, tau_syn, kappa, kappa_reg, c_reg) changed while eprop_event_synapse windows are "
        "open; change them before the first simulation." );
  }
  n_lambda_ = n_distinct;
  n_filters_ = n_filters;
  reg_factor_ = reg_factor;
  segment_shift_ = shift;
  segment_ = 1L << shift;
  stride_ = stride;
  filter_stride_ = filter_stride;
  kappa_[ 0 ] = kappas[ 0 ];
  kappa_[ 1 ] = kappas[ 1 ];
  std::copy( distinct, distinct + n_distinct, lambda_ );
  for ( int f = 0; f < n_filters; ++f )
  {
    kappa_pow_[ f ] = power_table_( kappas[ f ] );
  }
  for ( int m = 0; m < n_distinct; ++m )
  {
    lambda_pow_[ m ] = power_table_( distinct[ m ] );
  }
  if ( store_ )
  {
    EventHistoryStore::detach( store_ );
  }
  EventHistoryStore::Constants constants {};
  for ( int f = 0; f < n_filters; ++f )
  {
    constants.kappa[ f ] = kappa_[ f ];
    constants.kappa_pow[ f ] = kappa_pow_[ f ];
  }
  for ( int m = 0; m < n_distinct; ++m )
  {
    constants.lambda[ m ] = lambda_[ m ];
    constants.lambda_pow[ m ] = lambda_pow_[ m ];
  }
  store_ = EventHistoryStore::attach(
    get_thread(), n_filters, n_distinct, segment_shift_, constants, blocks_fit, this, column_ );
}

void
EpropEventNode::clear_event_history_()
{
  t_first_ = 0;
  t_end_ = 0;
}

void
EpropEventNode::append_event_entry_( const long t, const double surrogate_gradient, const double firing_rate_reg )
{
  if ( t_end_ == 0 )
  {
    t_first_ = t;
  }
  else
  {
    assert( t == t_end_ );
  }
  store_->ensure_segment( t );
  t_end_ = t + 1;
  double* e = entry_( t );
  std::fill( e, e + stride_, 0.0 );
  e[ 0 ] = surrogate_gradient;
  if ( n_filters_ == 2 )
  {
    e[ filter_offset_( 1 ) ] = firing_rate_reg;
  }
  else
  {
    e[ filter_offset_( 0 ) ] = reg_factor_ * firing_rate_reg;  // learning signals are added later
  }
}

void
EpropEventNode::add_event_learning_signal_( const long t, const double learning_signal )
{
  if ( not held_( t ) )
  {
    return;  // no synapse can read this entry
  }
  if ( t < store_->next_row() )
  {
    throw nest::KernelException( get_name() + ": learning signal for step " + std::to_string( t )
      + " arrived after its running sums were completed (e-prop delays must be one step)." );
  }
  entry_( t )[ filter_offset_( 0 ) ] += learning_signal;
}

void
EpropEventNode::prune_event_history_( const long t_now )
{
  store_->prune( t_now - transit_margin(), get_eprop_isi_trace_cutoff() );
}

double
EpropEventNode::summarized_surrogate_gradient_( const long t ) const
{
  const WindowSummary* w = store_->summary( t, column_ );
  if ( not w )
  {
    throw nest::KernelException( get_name() + ": e-prop history for step " + std::to_string( t ) + " is not held." );
  }
  return w->psi;
}

double
EpropEventNode::event_learning_signal_or_zero_( const long t ) const
{
  return held_( t ) ? entry_( t )[ filter_offset_( 0 ) ] : 0.0;
}

double
EpropEventNode::summarized_signal_( const long t, const int filter ) const
{
  const WindowSummary* w = store_->summary( t, column_ );
  return w ? w->signal[ filter ] : 0.0;
}

void
EpropEventNode::summarize_event_window( const long a, WindowSummary& summary ) const
{
  event_entry_values_( a, summary.psi, summary.signal );
  // the window after a is linear in the synapse's filtered traces and trace coefficients: one pass per unit input
  const long end = a + event_cutoff_;
  const double zero[ 3 ] = { 0.0, 0.0, 0.0 };
  double ebar[ 2 ] = { 1.0, 1.0 };
  double total[ 2 ] = { 0.0, 0.0 };
  event_window_( a + 1, end, ebar, zero, a, total );
  std::copy( total, total + 2, summary.A );
  for ( int m = 0; m < n_lambda_; ++m )
  {
    double unit[ 3 ] = { 0.0, 0.0, 0.0 };
    unit[ m ] = 1.0;
    double e[ 2 ] = { 0.0, 0.0 };
    double t[ 2 ] = { 0.0, 0.0 };
    event_window_( a + 1, end, e, unit, a, t );
    for ( int f = 0; f < 2; ++f )
    {
      summary.B[ f ][ m ] = t[ f ];
      summary.D[ f ][ m ] = e[ f ];
    }
  }
}

bool
EpropEventNode::apply_window_summary_( const long a,
  const long b,
  double ebar[ 2 ],
  const double* Y,
  const long tau,
  double total[ 2 ] ) const
{
  const WindowSummary* w = ( a == tau + 1 and b == tau + event_cutoff_ ) ? store_->summary( tau, column_ ) : nullptr;
  if ( not w )
  {
    throw nest::KernelException( get_name() + ": e-prop history for steps " + std::to_string( a ) + " to "
      + std::to_string( b - 1 ) + " is not available (complete up to " + std::to_string( store_->next_row() - 1 )
      + ")." );
  }
  for ( int f = 0; f < n_filters_; ++f )
  {
    double sum = w->A[ f ] * ebar[ f ];
    double new_ebar = kappa_power_( f, b - a ) * ebar[ f ];
    for ( int m = 0; m < n_lambda_; ++m )
    {
      sum += w->B[ f ][ m ] * Y[ m ];
      new_ebar += w->D[ f ][ m ] * Y[ m ];
    }
    total[ f ] += sum;
    ebar[ f ] = new_ebar;
  }
  return true;
}

}  // namespace nestgrad
