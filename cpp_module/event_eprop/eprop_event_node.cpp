/*
 *  eprop_event_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_event_node.h"

#include <algorithm>
#include <cmath>
#include <string>

// NEST public headers
#include "eprop_archiving_node_recurrent_impl.h"
#include "exceptions.h"
#include "kernel_manager.h"

namespace nestgrad
{

namespace
{
// Longest segment: a window that starts and ends inside one segment is summed step by step, longer ones cost one
// entry per segment crossed. Shorter if needed so that lambda^segment stays far from underflow.
constexpr long max_segment = 64;
constexpr double smallest_weight = 1e-200;

// Entries kept behind the step being updated for spikes still in transit (their window starts one step earlier).
long
transit_margin()
{
  return nest::kernel().connection_manager.get_min_delay() + 4;
}
}  // namespace

EpropEventNode::EpropEventNode()
  : EpropArchivingNodeRecurrent()
{
}

EpropEventNode::EpropEventNode( const EpropEventNode& n )
  : EpropArchivingNodeRecurrent( n )
  , event_indegree_( 0 )
{
}

void
EpropEventNode::configure_event_history_( const int n_lambda,
  const double* lambda,
  const double kappa,
  const double kappa_reg,
  const bool regularize )
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
  const int n_filters = regularize ? 2 : 1;
  const double kappas[ 2 ] = { kappa, regularize ? kappa_reg : 0.0 };

  // Segment: the weights kappa^k and lambda^k inside a segment stay above smallest_weight (no denormals).
  double worst = 1.0;
  for ( int f = 0; f < n_filters; ++f )
  {
    worst = std::min( worst, kappas[ f ] );
  }
  for ( int m = 0; m < n_lambda; ++m )
  {
    if ( not( lambda[ m ] > 0.0 and lambda[ m ] < 1.0 ) )
    {
      throw nest::BadProperty( get_name() + ": trace constants must lie in (0, 1) for eprop_event_synapse." );
    }
    worst = std::min( worst, lambda[ m ] );
  }
  const long segment = worst < 1.0
    ? std::clamp( static_cast< long >( std::log( smallest_weight ) / std::log( worst ) ), 1L, max_segment )
    : max_segment;
  const long filter_stride = 3 + 4 * n_lambda;
  const long stride = 1 + n_filters * filter_stride;

  const bool same = n_lambda == n_lambda_ and n_filters == n_filters_ and segment == segment_ and stride == stride_
    and kappas[ 0 ] == kappa_[ 0 ] and kappas[ 1 ] == kappa_[ 1 ] and std::equal( lambda, lambda + n_lambda, lambda_ );
  if ( same )
  {
    return;
  }
  if ( count_ > 0 )
  {
    throw nest::KernelException( get_name()
      + ": trace constants (tau_m, tau_syn, kappa, kappa_reg, c_reg) changed while eprop_event_synapse windows are "
        "open; change them before the first simulation." );
  }
  n_lambda_ = n_lambda;
  n_filters_ = n_filters;
  segment_ = segment;
  stride_ = stride;
  filter_stride_ = filter_stride;
  kappa_[ 0 ] = kappas[ 0 ];
  kappa_[ 1 ] = kappas[ 1 ];
  std::copy( lambda, lambda + n_lambda, lambda_ );

  auto powers = []( double base, long n )
  {
    std::vector< double > table( n + 1, 1.0 );
    for ( long k = 1; k <= n; ++k )
    {
      table[ k ] = std::pow( base, static_cast< double >( k ) );
    }
    return table;
  };
  for ( int f = 0; f < n_filters; ++f )
  {
    kappa_pow_[ f ] = powers( kappas[ f ], segment );
  }
  for ( int m = 0; m < n_lambda; ++m )
  {
    lambda_pow_[ m ] = powers( lambda[ m ], segment );
  }
}

void
EpropEventNode::clear_event_history_()
{
  buffer_.clear();
  head_ = 0;
  count_ = 0;
  t_first_ = 0;
  t_next_sum_ = 0;
  reader_counts_.clear();
  bucket_base_ = 0;
}

void
EpropEventNode::append_event_entry_( const long t, const double surrogate_gradient, const double firing_rate_reg )
{
  if ( count_ == 0 )
  {
    buffer_.clear();
    head_ = 0;
    t_first_ = t;
    t_next_sum_ = std::max( t_next_sum_, t );
  }
  assert( t == t_first_ + static_cast< long >( count_ ) );
  const size_t at = buffer_.size();
  buffer_.resize( at + stride_, 0.0 );
  double* e = buffer_.data() + at;
  e[ 0 ] = surrogate_gradient;
  if ( n_filters_ == 2 )
  {
    e[ filter_offset_( 1 ) ] = firing_rate_reg;
  }
  ++count_;
}

void
EpropEventNode::add_event_learning_signal_( const long t, const double learning_signal )
{
  if ( count_ == 0 or t < t_first_ or t >= t_first_ + static_cast< long >( count_ ) )
  {
    return;  // no synapse needs this entry
  }
  if ( t < t_next_sum_ )
  {
    throw nest::KernelException( get_name() + ": learning signal for step " + std::to_string( t )
      + " arrived after its running sums were completed (e-prop delays must be one step)." );
  }
  entry_( t )[ 1 ] += learning_signal;
}

void
EpropEventNode::finalize_event_entries_( const long t )
{
  const long last = std::min( t, t_first_ + static_cast< long >( count_ ) - 1 );
  const long S = segment_;
  const int nl = n_lambda_;
  for ( long e = std::max( t_next_sum_, t_first_ ); e <= last; ++e )
  {
    double* cur = entry_( e );
    const long k = e % S;
    // an entry before e that is not held is needed by no window that starts before e
    const double* prev = ( k > 0 and e > t_first_ ) ? entry_( e - 1 ) : nullptr;
    const double psi = cur[ 0 ];
    for ( int f = 0; f < n_filters_; ++f )
    {
      const long o = filter_offset_( f );
      const double L = cur[ o ];
      cur[ o + 1 ] = ( prev ? prev[ o + 1 ] : 0.0 ) + L * kappa_pow_[ f ][ k ];
      for ( int m = 0; m < nl; ++m )
      {
        const long g = o + 2 + m;
        const long n = o + 2 + nl + m;
        cur[ g ] = ( prev ? kappa_[ f ] * prev[ g ] : 0.0 ) + psi * lambda_pow_[ m ][ k ];
        cur[ n ] = ( prev ? prev[ n ] : 0.0 ) + L * cur[ g ];
      }
    }
    if ( k == S - 1 )
    {
      complete_segment_( e );
    }
  }
  t_next_sum_ = std::max( t_next_sum_, last + 1 );
}

void
EpropEventNode::complete_segment_( const long t_last )
{
  const long S = segment_;
  const int nl = n_lambda_;
  const long R = t_last - ( S - 1 );
  const double* next = nullptr;
  for ( long e = t_last; e >= std::max( R, t_first_ ); --e )
  {
    double* cur = entry_( e );
    const double psi = cur[ 0 ];
    for ( int f = 0; f < n_filters_; ++f )
    {
      const long o = filter_offset_( f );
      const long q = o + 2 + 2 * nl;
      const double kf = kappa_[ f ];
      cur[ q ] = cur[ o ] + ( next ? kf * next[ q ] : 0.0 );
      const double psi_end = psi * kappa_pow_[ f ][ t_last - e ];
      for ( int m = 0; m < nl; ++m )
      {
        const double lm = lambda_[ m ];
        const long kk = q + 1 + m;
        const long w = q + 1 + nl + m;
        cur[ kk ] = psi_end + ( next ? lm * next[ kk ] : 0.0 );
        cur[ w ] = psi * cur[ q ] + ( next ? lm * next[ w ] : 0.0 );
      }
    }
    next = cur;
  }
}

void
EpropEventNode::move_event_reader( const long t_spike_previous, const long t_spike )
{
  if ( reader_counts_.empty() )
  {
    bucket_base_ = t_spike / bucket_steps_;
  }
  if ( t_spike_previous > 0 )
  {
    const long i = t_spike_previous / bucket_steps_ - bucket_base_;
    if ( i >= 0 and i < static_cast< long >( reader_counts_.size() ) )
    {
      --reader_counts_[ i ];
    }
  }
  const long i = t_spike / bucket_steps_ - bucket_base_;
  assert( i >= 0 );
  while ( static_cast< long >( reader_counts_.size() ) <= i )
  {
    reader_counts_.push_back( 0 );
  }
  ++reader_counts_[ i ];
}

void
EpropEventNode::prune_event_history_( const long t_now )
{
  long keep_from = t_now - transit_margin();
  while ( not reader_counts_.empty() and reader_counts_.front() == 0
    and ( bucket_base_ + 1 ) * bucket_steps_ <= keep_from )
  {
    reader_counts_.pop_front();
    ++bucket_base_;
  }
  if ( not reader_counts_.empty() )
  {
    keep_from = std::min( keep_from, bucket_base_ * bucket_steps_ - 1 );  // a window starts one step before a spike
  }
  const long drop = std::min( keep_from - t_first_, static_cast< long >( count_ ) );
  if ( drop <= 0 )
  {
    return;
  }
  head_ += drop;
  count_ -= drop;
  t_first_ += drop;
  if ( head_ > count_ )  // amortised O(1): move the live entries to the front once the dead ones outnumber them
  {
    buffer_.erase( buffer_.begin(), buffer_.begin() + head_ * stride_ );
    head_ = 0;
  }
}

double
EpropEventNode::event_surrogate_gradient_( const long t ) const
{
  return entry_( t )[ 0 ];
}

double
EpropEventNode::event_learning_signal_or_zero_( const long t ) const
{
  return ( count_ > 0 and t >= t_first_ and t < t_first_ + static_cast< long >( count_ ) ) ? entry_( t )[ 1 ] : 0.0;
}

double
EpropEventNode::event_signal_( const long t, const int filter ) const
{
  return filter < n_filters_ ? entry_( t )[ filter_offset_( filter ) ] : 0.0;
}

double
EpropEventNode::table_pow_( const std::vector< double >& table, long n ) const
{
  const long S = segment_;
  double result = table[ n % S ];
  for ( long q = n / S; q > 0; --q )
  {
    result *= table[ S ];
  }
  return result;
}

void
EpropEventNode::event_window_( long a,
  const long b,
  double ebar[ 2 ],
  const double* Y,
  const long tau,
  double total[ 2 ] ) const
{
  if ( a >= b )
  {
    return;
  }
  if ( a < t_first_ or b - 1 >= t_next_sum_ )
  {
    throw nest::KernelException( get_name() + ": e-prop history for steps " + std::to_string( a ) + " to "
      + std::to_string( b - 1 ) + " is not available (held: " + std::to_string( t_first_ ) + " to "
      + std::to_string( t_next_sum_ - 1 ) + ")." );
  }
  const long S = segment_;
  const int nl = n_lambda_;
  double lam[ 3 ];  // Y[m] lambda_m^(a - tau) at the start a of each part
  for ( int m = 0; m < nl; ++m )
  {
    lam[ m ] = Y[ m ] * table_pow_( lambda_pow_[ m ], a - tau );
  }
  while ( a < b )
  {
    const long R = a - a % S;
    const long end = std::min( b, R + S );
    if ( a == R )
    {
      // [R, end): forward sums of entry end - 1
      const double* e = entry_( end - 1 );
      for ( int f = 0; f < n_filters_; ++f )
      {
        const long o = filter_offset_( f );
        double sum = ebar[ f ] * kappa_[ f ] * e[ o + 1 ];
        double new_ebar = ebar[ f ] * kappa_pow_[ f ][ end - R ];
        for ( int m = 0; m < nl; ++m )
        {
          sum += lam[ m ] * e[ o + 2 + nl + m ];
          new_ebar += lam[ m ] * e[ o + 2 + m ];
        }
        total[ f ] += sum;
        ebar[ f ] = new_ebar;
      }
    }
    else if ( end == R + S )
    {
      // [a, E) of a complete segment: suffix sums of entry a
      const double* e = entry_( a );
      for ( int f = 0; f < n_filters_; ++f )
      {
        const long q = filter_offset_( f ) + 2 + 2 * nl;
        double sum = ebar[ f ] * kappa_[ f ] * e[ q ];
        double new_ebar = ebar[ f ] * kappa_pow_[ f ][ end - a ];
        for ( int m = 0; m < nl; ++m )
        {
          sum += lam[ m ] * e[ q + 1 + nl + m ];
          new_ebar += lam[ m ] * e[ q + 1 + m ];
        }
        total[ f ] += sum;
        ebar[ f ] = new_ebar;
      }
    }
    else
    {
      // starts and ends inside one segment: step by step (fewer than segment_ steps)
      double x[ 3 ];
      std::copy( lam, lam + nl, x );
      for ( long t = a; t < end; ++t )
      {
        const double* e = entry_( t );
        double trace = 0.0;
        for ( int m = 0; m < nl; ++m )
        {
          trace += x[ m ];
          x[ m ] *= lambda_[ m ];
        }
        const double el = e[ 0 ] * trace;
        for ( int f = 0; f < n_filters_; ++f )
        {
          ebar[ f ] = kappa_[ f ] * ebar[ f ] + el;
          total[ f ] += e[ filter_offset_( f ) ] * ebar[ f ];
        }
      }
    }
    for ( int m = 0; m < nl; ++m )
    {
      lam[ m ] *= lambda_pow_[ m ][ end - a ];
    }
    a = end;
  }
}

}  // namespace nestgrad
