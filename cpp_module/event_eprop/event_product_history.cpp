/*
 *  event_product_history.cpp
 *
 *  This file is part of nestgrad.
 */

#include "event_product_history.h"

#include <algorithm>
#include <cmath>

// NEST public headers
#include "exceptions.h"

namespace nestgrad
{

EventProductHistory::EventProductHistory( const EventProductHistory& )
{
}

void
EventProductHistory::configure( const int d,
  const double* free,
  const int n_filters,
  const double* kappa,
  const int segment_shift )
{
  if ( segment_shift < 1 or segment_shift > max_shift )
  {
    throw nest::KernelException( "eprop_event_synapse: running products need segments of 2 to "
      + std::to_string( 1L << max_shift ) + " steps (got 2^" + std::to_string( segment_shift ) + ")." );
  }
  const bool same = d == d_ and n_filters == n_filters_ and std::equal( free, free + d * d, free_ )
    and std::equal( kappa, kappa + n_filters, kappa_ ) and segment_shift == shift_;
  if ( same )
  {
    return;
  }
  if ( t_end_ > 0 )
  {
    throw nest::KernelException(
      "eprop_event_synapse: the neuron's eligibility coefficients or segment length (event_segment_steps) changed "
      "while windows are open; change them before the first simulation." );
  }
  d_ = d;
  n_filters_ = n_filters;
  shift_ = segment_shift;
  segment_ = 1L << shift_;
  mask_ = segment_ - 1;
  spare_segments_.clear();  // their size was the old layout's
  spare_readers_.clear();
  std::copy( free, free + d * d, free_ );
  for ( int f = 0; f < n_filters; ++f )
  {
    kappa_[ f ] = kappa[ f ];
    kappa_pow_[ f ][ 0 ] = 1.0;
    for ( long n = 1; n <= segment_; ++n )
    {
      kappa_pow_[ f ][ n ] = kappa_pow_[ f ][ n - 1 ] * kappa[ f ];
    }
  }
  filter_stride_ = 3 + 4 * d;
  f_offset_ = 1 + n_filters * filter_stride_;
  p_offset_ = f_offset_ + d * d;
  a_offset_ = p_offset_ + d * d;
  stride_ = a_offset_ + d * d + 2 * d + 1;
}

void
EventProductHistory::append( const long t,
  const double psi,
  const double* A,
  const double* h,
  const double* B,
  const double hz,
  const double reg,
  const double reg_factor )
{
  if ( t_end_ == 0 )
  {
    t_first_ = t;
    next_row_ = t;
  }
  if ( segments_.empty() )
  {
    first_segment_ = t >> shift_;
  }
  while ( ( t >> shift_ ) - first_segment_ >= static_cast< long >( segments_.size() ) )
  {
    // entries are written in full by append() before they are read: no need to zero them
    if ( spare_segments_.empty() )
    {
      segments_.emplace_back( new double[ segment_ * stride_ ] );
      readers_.emplace_back( new int32_t[ segment_ ] );
    }
    else
    {
      segments_.push_back( std::move( spare_segments_.back() ) );
      readers_.push_back( std::move( spare_readers_.back() ) );
      spare_segments_.pop_back();
      spare_readers_.pop_back();
    }
    std::fill( readers_.back().get(), readers_.back().get() + segment_, 0 );
  }
  t_end_ = t + 1;
  double* e = entry_( t );
  std::fill( e, e + stride_, 0.0 );
  e[ 0 ] = psi;
  std::copy( A, A + d_ * d_, e + a_offset_ );
  std::copy( h, h + d_, e + a_offset_ + d_ * d_ );
  std::copy( B, B + d_, e + a_offset_ + d_ * d_ + d_ );
  e[ a_offset_ + d_ * d_ + 2 * d_ ] = hz;
  if ( n_filters_ == 2 )
  {
    e[ filter_offset_( 1 ) ] = reg;
  }
  else
  {
    e[ filter_offset_( 0 ) ] = reg_factor * reg;  // learning signals are added later
  }
}

void
EventProductHistory::add_learning_signal( const long t, const double signal )
{
  if ( not held_( t ) )
  {
    return;
  }
  if ( t < next_row_ )
  {
    throw nest::KernelException( "eprop_event_synapse: learning signal for step " + std::to_string( t )
      + " arrived after its running sums were completed (e-prop delays must be one step)." );
  }
  entry_( t )[ filter_offset_( 0 ) ] += signal;
}

double
EventProductHistory::psi( const long t ) const
{
  if ( not held_( t ) )
  {
    throw nest::KernelException( "eprop_event_synapse: e-prop history for step " + std::to_string( t )
      + " is not held." );
  }
  return entry_( t )[ 0 ];
}

double
EventProductHistory::signal( const long t, const int f ) const
{
  if ( f >= n_filters_ )
  {
    return 0.0;
  }
  if ( not held_( t ) )
  {
    throw nest::KernelException( "eprop_event_synapse: e-prop history for step " + std::to_string( t )
      + " is not held." );
  }
  return entry_( t )[ filter_offset_( f ) ];
}

double
EventProductHistory::learning_signal_or_zero( const long t ) const
{
  return held_( t ) ? entry_( t )[ filter_offset_( 0 ) ] : 0.0;
}

void
EventProductHistory::row_times_( const double* r, const double* A, double* out ) const
{
  const int d = d_;
  for ( int m = 0; m < d; ++m )
  {
    double v = 0.0;
    for ( int i = 0; i < d; ++i )
    {
      v += r[ i ] * A[ i * d + m ];
    }
    out[ m ] = v;
  }
}

void
EventProductHistory::forward_( const long t )
{
  const int d = d_;
  const long R = t & ~mask_;
  double* e = entry_( t );
  const double* prev = t > R ? entry_( t - 1 ) : nullptr;
  const double* A = e + a_offset_;
  const double* h = A + d * d;

  // H = h^T F[t-1]; F[t] = A F[t-1]
  double F_prev[ max_states * max_states ] = {};
  if ( prev )
  {
    std::copy( prev + f_offset_, prev + f_offset_ + d * d, F_prev );
  }
  else
  {
    for ( int i = 0; i < d; ++i )
    {
      F_prev[ i * d + i ] = 1.0;
    }
  }
  double H[ max_states ];
  row_times_( h, F_prev, H );
  double* F = e + f_offset_;
  for ( int i = 0; i < d; ++i )
  {
    row_times_( A + i * d, F_prev, F + i * d );
  }
  for ( int f = 0; f < n_filters_; ++f )
  {
    double* s = e + filter_offset_( f );
    const double* p = prev ? prev + filter_offset_( f ) : nullptr;
    const double L = s[ 0 ];
    double* G = s + 3;
    double* N = s + 3 + d;
    s[ 1 ] = ( p ? p[ 1 ] : 0.0 ) + L * kappa_pow_[ f ][ t - R ];
    for ( int m = 0; m < d; ++m )
    {
      G[ m ] = ( p ? kappa_[ f ] * p[ 3 + m ] : 0.0 ) + H[ m ];
      N[ m ] = ( p ? p[ 3 + d + m ] : 0.0 ) + L * G[ m ];
    }
  }
}

void
EventProductHistory::backward_( const long R )
{
  const int d = d_;
  const long E = R + segment_;
  for ( long a = E - 1; a >= R; --a )
  {
    double* e = entry_( a );
    const double* next = a + 1 < E ? entry_( a + 1 ) : nullptr;
    const double* A = e + a_offset_;
    const double* h = A + d * d;
    // P[a] = P[a+1] A_a, row by row
    double* P = e + p_offset_;
    if ( next )
    {
      for ( int i = 0; i < d; ++i )
      {
        row_times_( next + p_offset_ + i * d, A, P + i * d );
      }
    }
    else
    {
      std::copy( A, A + d * d, P );
    }
    for ( int f = 0; f < n_filters_; ++f )
    {
      double* s = e + filter_offset_( f );
      const double* n = next ? next + filter_offset_( f ) : nullptr;
      s[ 2 ] = s[ 0 ] + ( n ? kappa_[ f ] * n[ 2 ] : 0.0 );  // Q
      double* K = s + 3 + 2 * d;
      double* W = s + 3 + 3 * d;
      if ( n )
      {
        row_times_( n + 3 + 2 * d, A, K );
        row_times_( n + 3 + 3 * d, A, W );
      }
      else
      {
        std::fill( K, K + d, 0.0 );
        std::fill( W, W + d, 0.0 );
      }
      const double kpow = kappa_pow_[ f ][ E - 1 - a ];
      for ( int m = 0; m < d; ++m )
      {
        K[ m ] += kpow * h[ m ];
        W[ m ] += s[ 2 ] * h[ m ];
      }
    }
  }
}

void
EventProductHistory::finalize_through( const long t )
{
  const long last = std::min( t, t_end_ - 1 );
  for ( ; next_row_ <= last; ++next_row_ )
  {
    if ( not held_( next_row_ ) )
    {
      continue;  // dropped before it was needed (no synapse can read it)
    }
    forward_( next_row_ );
    if ( ( next_row_ & mask_ ) == mask_ )
    {
      backward_( next_row_ & ~mask_ );
    }
  }
}

void
EventProductHistory::window( const long a, const long b, double* x, double ebar[ 2 ], double total[ 2 ] ) const
{
  window_cols_< 1 >( a, b, x, ebar, total );
}

namespace
{
// X = A X for a d x d map A and a d x NC block X (row-major), with d fixed at compile time: fully unrolled, no calls
template < int D, int NC >
void
times_fixed( const double* A, double* X )
{
  double Y[ D * NC ];
  for ( int i = 0; i < D; ++i )
  {
    for ( int c = 0; c < NC; ++c )
    {
      double v = 0.0;
      for ( int m = 0; m < D; ++m )
      {
        v += A[ i * D + m ] * X[ m * NC + c ];
      }
      Y[ i * NC + c ] = v;
    }
  }
  for ( int k = 0; k < D * NC; ++k )
  {
    X[ k ] = Y[ k ];
  }
}
}  // namespace

template < int NC >
void
EventProductHistory::times_cols_( const double* A, double* X ) const
{
  static_assert( max_states == 5 );
  switch ( d_ )
  {
  case 1:
    times_fixed< 1, NC >( A, X );
    break;
  case 2:
    times_fixed< 2, NC >( A, X );
    break;
  case 3:
    times_fixed< 3, NC >( A, X );
    break;
  case 4:
    times_fixed< 4, NC >( A, X );
    break;
  default:
    times_fixed< 5, NC >( A, X );
  }
}

template < int NC >
void
EventProductHistory::window_cols_( long a, const long b, double* X, double* EB, double* T ) const
{
  const int d = d_;
  if ( a < b and ( not held_( a ) or not held_( b - 1 ) or b - 1 >= next_row_ ) )
  {
    throw nest::KernelException( "eprop_event_synapse: e-prop history for steps " + std::to_string( a ) + " to "
      + std::to_string( b - 1 ) + " is not available (complete up to " + std::to_string( next_row_ - 1 ) + ")." );
  }
  while ( a < b )
  {
    const long R = a & ~mask_;
    const long end = std::min( b, R + segment_ );
    if ( a == R or end == R + segment_ )
    {
      // [R, end): forward sums of entry end - 1;  [a, E): backward sums of entry a (the segment is complete)
      const bool forward = a == R;
      const double* e = entry_( forward ? end - 1 : a );
      const long steps = end - a;
      for ( int f = 0; f < n_filters_; ++f )
      {
        const double* s = e + filter_offset_( f );
        const double* G = s + ( forward ? 3 : 3 + 2 * d );
        const double* N = s + ( forward ? 3 + d : 3 + 3 * d );
        const double scale = kappa_[ f ] * s[ forward ? 1 : 2 ];
        const double decay = kappa_pow_[ f ][ steps ];
        double* eb = EB + f * NC;
        double* tot = T + f * NC;
        for ( int c = 0; c < NC; ++c )
        {
          double sum = eb[ c ] * scale;
          double new_ebar = eb[ c ] * decay;
          for ( int m = 0; m < d; ++m )
          {
            sum += N[ m ] * X[ m * NC + c ];
            new_ebar += G[ m ] * X[ m * NC + c ];
          }
          tot[ c ] += sum;
          eb[ c ] = new_ebar;
        }
      }
      times_cols_< NC >( e + ( forward ? f_offset_ : p_offset_ ), X );
    }
    else
    {
      // inside a segment: step by step (fewer than segment_ steps)
      const double none[ NC ] = {};
      for ( long t = a; t < end; ++t )
      {
        step_cols_< NC >( t, none, X, EB, T );
      }
    }
    a = end;
  }
}

template < int NC >
void
EventProductHistory::step_cols_( const long t, const double* z, double* X, double* EB, double* T ) const
{
  const int d = d_;
  const double* e = entry_( t );
  const double* A = e + a_offset_;
  const double* h = A + d * d;
  const double* B = h + d;
  double el[ NC ];
  for ( int c = 0; c < NC; ++c )
  {
    el[ c ] = B[ d ] * z[ c ];  // hz
  }
  for ( int i = 0; i < d; ++i )
  {
    for ( int c = 0; c < NC; ++c )
    {
      el[ c ] += h[ i ] * X[ i * NC + c ];
    }
  }
  times_cols_< NC >( A, X );
  for ( int i = 0; i < d; ++i )
  {
    for ( int c = 0; c < NC; ++c )
    {
      X[ i * NC + c ] += B[ i ] * z[ c ];
    }
  }
  for ( int f = 0; f < n_filters_; ++f )
  {
    const double L = e[ filter_offset_( f ) ];
    for ( int c = 0; c < NC; ++c )
    {
      EB[ f * NC + c ] = kappa_[ f ] * EB[ f * NC + c ] + el[ c ];
      T[ f * NC + c ] += L * EB[ f * NC + c ];
    }
  }
}

void
EventProductHistory::spike_window_entries_( const long a,
  const long end,
  const double spike,
  const double pending,
  double* x,
  double ebar[ 2 ],
  double total[ 2 ] ) const
{
  step_cols_< 1 >( a, &pending, x, ebar, total );
  if ( a + 1 < end )
  {
    step_cols_< 1 >( a + 1, &spike, x, ebar, total );
    window_cols_< 1 >( a + 2, end, x, ebar, total );
  }
}

void
EventProductHistory::spike_window( const long a,
  const long end,
  const bool pending,
  double* x,
  double ebar[ 2 ],
  double total[ 2 ] ) const
{
  if ( held_( a ) )
  {
    if ( not held_( end - 1 ) or end - 1 >= next_row_ )
    {
      throw nest::KernelException( "eprop_event_synapse: e-prop history for steps " + std::to_string( a ) + " to "
        + std::to_string( end - 1 ) + " is not available (complete up to " + std::to_string( next_row_ - 1 ) + ")." );
    }
    spike_window_entries_( a, end, 1.0, pending ? 1.0 : 0.0, x, ebar, total );
    return;
  }
  const auto it = summaries_.find( a );
  if ( it == summaries_.end() or it->second.end != end )
  {
    throw nest::KernelException( "eprop_event_synapse: e-prop history for step " + std::to_string( a )
      + " is not held and has no summary for a window to step " + std::to_string( end - 1 ) + "." );
  }
  ++summaries_used_;
  const int d = d_;
  const int n = 4 + d;
  double in[ 4 + max_states ] = { 1.0, pending ? 1.0 : 0.0, ebar[ 0 ], ebar[ 1 ] };
  std::copy( x, x + d, in + 4 );
  const double* M = it->second.map.data();
  double out[ 4 + max_states ];
  for ( int r = 0; r < n; ++r )
  {
    double v = 0.0;
    for ( int c = 0; c < n; ++c )
    {
      v += M[ r * n + c ] * in[ c ];
    }
    out[ r ] = v;
  }
  total[ 0 ] += out[ 0 ];
  total[ 1 ] += out[ 1 ];
  ebar[ 0 ] = out[ 2 ];
  ebar[ 1 ] = out[ 3 ];
  std::copy( out + 4, out + 4 + d, x );
}

void
EventProductHistory::summarize_( const long a, const long cutoff )
{
  // The window is linear in its inputs (new spike, pending spike, ebar[2], x[d]): all unit inputs in one pass, one
  // column each (columns beyond 4 + d stay zero).
  constexpr int NC = summary_columns_;
  const int d = d_;
  const int n = 4 + d;
  double z_new[ NC ] = {};
  double z_pending[ NC ] = {};
  double X[ max_states * NC ] = {};
  double EB[ 2 * NC ] = {};
  double T[ 2 * NC ] = {};
  z_new[ 0 ] = 1.0;
  z_pending[ 1 ] = 1.0;
  EB[ 0 * NC + 2 ] = 1.0;
  EB[ 1 * NC + 3 ] = n_filters_ == 2 ? 1.0 : 0.0;
  for ( int r = 0; r < d; ++r )
  {
    X[ r * NC + 4 + r ] = 1.0;
  }
  const long end = a + cutoff;
  step_cols_< NC >( a, z_pending, X, EB, T );
  if ( a + 1 < end )
  {
    step_cols_< NC >( a + 1, z_new, X, EB, T );
    window_cols_< NC >( a + 2, end, X, EB, T );
  }
  Summary summary;
  summary.end = end;
  summary.map.assign( n * n, 0.0 );
  for ( int c = 0; c < n; ++c )
  {
    if ( c == 3 and n_filters_ == 1 )
    {
      continue;  // no second filter: its column stays zero
    }
    const double out[ 4 ] = { T[ c ], T[ NC + c ], EB[ c ], EB[ NC + c ] };
    for ( int r = 0; r < 4; ++r )
    {
      summary.map[ r * n + c ] = out[ r ];
    }
    for ( int r = 0; r < d; ++r )
    {
      summary.map[ ( 4 + r ) * n + c ] = X[ r * NC + c ];
    }
  }
  summary.readers = readers_[ ( a >> shift_ ) - first_segment_ ][ a & mask_ ];
  summaries_[ a ] = std::move( summary );
}

void
EventProductHistory::decay( long n, double* x ) const
{
  const int d = d_;
  double M[ max_states * max_states ];
  std::copy( free_, free_ + d * d, M );
  while ( n > 0 )
  {
    if ( n & 1 )
    {
      times_cols_< 1 >( M, x );
    }
    n >>= 1;
    if ( n > 0 )
    {
      double S[ max_states * max_states ];
      for ( int i = 0; i < d; ++i )
      {
        for ( int m = 0; m < d; ++m )
        {
          double v = 0.0;
          for ( int l = 0; l < d; ++l )
          {
            v += M[ i * d + l ] * M[ l * d + m ];
          }
          S[ i * d + m ] = v;
        }
      }
      std::copy( S, S + d * d, M );
    }
  }
}

void
EventProductHistory::move_reader( const long a_old, const long a_new )
{
  if ( a_old >= 0 )
  {
    if ( held_( a_old ) )
    {
      --readers_[ ( a_old >> shift_ ) - first_segment_ ][ a_old & mask_ ];
    }
    else
    {
      const auto it = summaries_.find( a_old );
      if ( it != summaries_.end() and --it->second.readers <= 0 )
      {
        summaries_.erase( it );
      }
    }
  }
  if ( held_( a_new ) )
  {
    ++readers_[ ( a_new >> shift_ ) - first_segment_ ][ a_new & mask_ ];
  }
}

void
EventProductHistory::prune( const long t_keep, const long cutoff )
{
  // most synapses spike again within the longest segment: fewer summaries
  const long grace = std::max( segment_, 1L << max_shift );
  while ( not segments_.empty() )
  {
    const long R = first_segment_ << shift_;
    const long E = R + segment_;
    if ( E > t_keep )
    {
      return;
    }
    const int32_t* readers = readers_.front().get();
    if ( cutoff >= 0 )
    {
      if ( E + cutoff + grace > next_row_ )
      {
        return;  // a window starting here may still be read entry by entry
      }
      for ( long i = 0; i < segment_; ++i )
      {
        if ( readers[ i ] > 0 )
        {
          summarize_( R + i, cutoff );
        }
      }
    }
    else if ( std::any_of( readers, readers + segment_, []( int32_t r ) { return r > 0; } ) )
    {
      return;  // without a cutoff a window reads every entry up to its synapse's next spike
    }
    if ( spare_segments_.size() < 2 )
    {
      spare_segments_.push_back( std::move( segments_.front() ) );
      spare_readers_.push_back( std::move( readers_.front() ) );
    }
    segments_.pop_front();
    readers_.pop_front();
    ++first_segment_;
  }
}

}  // namespace nestgrad
