/*
 *  event_history_store.cpp
 *
 *  This file is part of nestgrad.
 */

#include "event_history_store.h"

#include "eprop_event_node.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace nestgrad
{

namespace
{
constexpr long summary_delay_segments = 8;

// Stores by (thread, stride, shift). Attach and detach happen outside the update loop (pre_run_hook, node deletion),
// possibly from several threads at once.
std::mutex registry_mutex;
using StoreKey = std::tuple< size_t, int, int, int >;  // thread, filters, lambdas, shift
std::map< StoreKey, EventHistoryStore* >&
registry()
{
  static std::map< StoreKey, EventHistoryStore* > stores;
  return stores;
}
}  // namespace

EventHistoryStore::EventHistoryStore( const int n_filters, const int n_lambda, const int shift )
  : anchor_current_( std::getenv( "NESTGRAD_EVENT_INCREMENTAL" ) == nullptr
      or std::string( std::getenv( "NESTGRAD_EVENT_INCREMENTAL" ) ) != "0" )
  , n_filters_( n_filters )
  , n_lambda_( n_lambda )
  , filter_stride_( 3 + 4 * n_lambda )
  , stride_( 1 + n_filters * ( 3 + 4 * n_lambda ) )
  , shift_( shift )
  , mask_( ( 1L << shift ) - 1 )
{
}

EventHistoryStore*
EventHistoryStore::attach( const size_t thread,
  const int n_filters,
  const int n_lambda,
  const int shift,
  const Constants& constants,
  const bool blocks_fit,
  EpropEventNode* node,
  long& column )
{
  const std::lock_guard< std::mutex > lock( registry_mutex );
  auto& store = registry()[ std::make_tuple( thread, n_filters, n_lambda, shift ) ];
  if ( not store )
  {
    store = new EventHistoryStore( n_filters, n_lambda, shift );
  }
  column = store->add_column_();
  if ( not blocks_fit )
  {
    store->block_level_ = false;  // for good: blocks joined so far may lack this column
  }
  store->constants_.push_back( constants );
  store->nodes_.push_back( node );
  ++store->n_neurons_;
  return store;
}

void
EventHistoryStore::detach( EventHistoryStore* store )
{
  const std::lock_guard< std::mutex > lock( registry_mutex );
  if ( --store->n_neurons_ > 0 )
  {
    return;
  }
  for ( auto it = registry().begin(); it != registry().end(); ++it )
  {
    if ( it->second == store )
    {
      registry().erase( it );
      break;
    }
  }
  delete store;
}

void
EventHistoryStore::FreeChunk::operator()( double* p ) const
{
  std::free( p );
}

EventHistoryStore::Chunk
EventHistoryStore::allocate_chunk_( const long rows ) const
{
  // calloc: large blocks come zeroed from the kernel, page by page as they are first written
  void* p = std::calloc( rows * n_columns_ * stride_, sizeof( double ) );
  if ( not p )
  {
    throw std::bad_alloc();
  }
  return Chunk( static_cast< double* >( p ) );
}

long
EventHistoryStore::add_column_()
{
  const long old_columns = n_columns_++;
  spare_chunks_.clear();  // sized for the old width
  std::unordered_map< long, WindowSummary > rekeyed;  // keys are a * n_columns + column
  for ( const auto& [ key, w ] : summaries_ )
  {
    rekeyed[ key / old_columns * n_columns_ + key % old_columns ] = w;
  }
  summaries_.swap( rekeyed );
  cached_key_ = -1;
  const long rows = mask_ + 1;
  auto widen = [ this, old_columns ]( Chunk& chunk, const long n_rows )
  {
    if ( not chunk )
    {
      return;
    }
    Chunk wider = allocate_chunk_( n_rows );
    for ( long r = 0; r < n_rows; ++r )
    {
      std::memcpy( wider.get() + r * n_columns_ * stride_,
        chunk.get() + r * old_columns * stride_,
        sizeof( double ) * old_columns * stride_ );
    }
    chunk = std::move( wider );
  };
  for ( auto& chunk : chunks_ )
  {
    widen( chunk, rows + n_levels_ );
  }
  for ( auto& block : blocks_ )
  {
    widen( block.sums, block_mask_ + 1 );
  }
  for ( auto& counts : reader_chunks_ )
  {
    if ( not counts )
    {
      continue;
    }
    auto wider = std::make_unique< int32_t[] >( rows * n_columns_ );  // zeroed
    for ( long r = 0; r < rows; ++r )
    {
      std::memcpy( wider.get() + r * n_columns_, counts.get() + r * old_columns, sizeof( int32_t ) * old_columns );
    }
    counts = std::move( wider );
  }
  return old_columns;
}

void
EventHistoryStore::ensure_segment( const long t )
{
  t_end_ = std::max( t_end_, t + 1 );
  const long s = t >> shift_;
  if ( chunks_.empty() )
  {
    chunk_base_ = s;
  }
  if ( s < chunk_base_ )
  {
    return;  // dropped: no window can read it
  }
  const long c = s - chunk_base_;
  if ( static_cast< long >( chunks_.size() ) <= c )
  {
    chunks_.resize( c + 1 );
    reader_chunks_.resize( c + 1 );
    levels_ready_.resize( c + 1, 0 );
  }
  if ( not chunks_[ c ] )
  {
    if ( spare_chunks_.empty() )
    {
      chunks_[ c ] = allocate_chunk_( mask_ + 1 + n_levels_ );
    }
    else
    {
      // every entry is written in full when its neuron appends it; columns that never append are never read
      chunks_[ c ] = std::move( spare_chunks_.back() );
      spare_chunks_.pop_back();
    }
    reader_chunks_[ c ] = std::make_unique< int32_t[] >( ( mask_ + 1 ) * n_columns_ );  // zeroed
    levels_ready_[ c ] = 0;
  }
}

void
EventHistoryStore::finalize_through( const long t )
{
  const long last = std::min( t, t_end_ - 1 );
  const int nl = n_lambda_;
  for ( long e = next_row_; e <= last; ++e )
  {
    if ( not segment_held( e ) )
    {
      continue;
    }
    const long k = e & mask_;
    double* cur = entry( e, 0 );
    const double* prev = k > 0 ? entry( e - 1, 0 ) : nullptr;  // a segment is held whole
    for ( long j = 0; j < n_columns_; ++j, cur += stride_, prev = prev ? prev + stride_ : nullptr )
    {
      const Constants& c = constants_[ j ];
      const double psi = cur[ 0 ];
      for ( int f = 0; f < n_filters_; ++f )
      {
        const long o = 1 + f * filter_stride_;
        const long mo = o + 2 + 2 * nl;  // M, then G[m], N[m]
        const double L = cur[ o ];
        cur[ mo ] = ( prev ? prev[ mo ] : 0.0 ) + L * c.kappa_pow[ f ][ k ];
        for ( int m = 0; m < nl; ++m )
        {
          const long g = mo + 1 + m;
          const long n = mo + 1 + nl + m;
          cur[ g ] = ( prev ? c.kappa[ f ] * prev[ g ] : 0.0 ) + psi * c.lambda_pow[ m ][ k ];
          cur[ n ] = ( prev ? prev[ n ] : 0.0 ) + L * cur[ g ];
        }
      }
    }
    if ( k == mask_ )
    {
      suffix_sums_( e - mask_, e );
      if ( block_level_ )
      {
        complete_levels_( e >> shift_ );
        complete_block_segment_( e );
      }
    }
  }
  next_row_ = std::max( next_row_, last + 1 );
}

void
EventHistoryStore::suffix_sums_( const long R, const long t_last )
{
  // anchored at t_last, backward row by row (all columns at a time); every value is overwritten
  const int nl = n_lambda_;
  for ( long e = t_last; e >= R; --e )
  {
    double* cur = entry( e, 0 );
    const double* next = e < t_last ? entry( e + 1, 0 ) : nullptr;
    for ( long j = 0; j < n_columns_; ++j, cur += stride_, next = next ? next + stride_ : nullptr )
    {
      const Constants& c = constants_[ j ];
      const double psi = cur[ 0 ];
      for ( int f = 0; f < n_filters_; ++f )
      {
        const long q = 2 + f * filter_stride_;  // Q, then K[m], W[m]; the signal is at q - 1
        cur[ q ] = cur[ q - 1 ] + ( next ? c.kappa[ f ] * next[ q ] : 0.0 );
        const double psi_end = psi * c.kappa_pow[ f ][ t_last - e ];
        for ( int m = 0; m < nl; ++m )
        {
          cur[ q + 1 + m ] = psi_end + ( next ? c.lambda[ m ] * next[ q + 1 + m ] : 0.0 );
          cur[ q + 1 + nl + m ] = psi * cur[ q ] + ( next ? c.lambda[ m ] * next[ q + 1 + nl + m ] : 0.0 );
        }
      }
    }
  }
}

void
EventHistoryStore::join_sums_( const double* a,
  const long oa,
  const long la,
  const double* b,
  const long ob,
  const long lb,
  double* out,
  const long oo ) const
{
  const int nl = n_lambda_;
  for ( long j = 0; j < n_columns_; ++j, a += stride_, b += stride_, out += stride_ )
  {
    const Constants& c = constants_[ j ];
    for ( int f = 0; f < n_filters_; ++f )
    {
      const long o = 1 + f * filter_stride_;
      const double* x = a + o + oa;  // M, G[m], N[m] of the first part
      const double* y = b + o + ob;  // ... of the second part
      double* z = out + o + oo;
      const double kappa_la = c.kappa_pow[ f ][ la ];
      const double kappa_lb = c.kappa_pow[ f ][ lb ];
      z[ 0 ] = x[ 0 ] + kappa_la * y[ 0 ];
      for ( int m = 0; m < nl; ++m )
      {
        const double lambda_la = c.lambda_pow[ m ][ la ];
        z[ 1 + m ] = kappa_lb * x[ 1 + m ] + lambda_la * y[ 1 + m ];
        z[ 1 + nl + m ] = x[ 1 + nl + m ] + c.kappa[ f ] * y[ 0 ] * x[ 1 + m ] + lambda_la * y[ 1 + nl + m ];
      }
    }
  }
}

void
EventHistoryStore::complete_levels_( const long s )
{
  // Segment s completes the groups of 2^k segments that end with it: join the two halves of each (level k - 1).
  const long S = mask_ + 1;
  const long mo = 2 + 2 * n_lambda_;  // forward sums (M, G, N) within a filter
  for ( int k = 1; k <= n_levels_; ++k )
  {
    const long j = s - ( 1L << k ) + 1;
    const long half = j + ( 1L << ( k - 1 ) );
    const long cj = j - chunk_base_;
    const long ch = half - chunk_base_;
    if ( cj < 0 or not chunks_[ cj ] or not chunks_[ ch ]
      or ( k > 1 and ( levels_ready_[ cj ] < k - 1 or levels_ready_[ ch ] < k - 1 ) ) )
    {
      return;  // a part of the group was not held
    }
    // level 0: the forward sums of a segment's last row; level k >= 1: row S + k - 1 of the segment's chunk
    auto sums = [ & ]( const long c, const int level ) -> double*
    {
      return chunks_[ c ].get() + ( level == 0 ? mask_ : mask_ + level ) * n_columns_ * stride_;
    };
    join_sums_( sums( cj, k - 1 ), mo, S << ( k - 1 ), sums( ch, k - 1 ), mo, S << ( k - 1 ), sums( cj, k ), mo );
    levels_ready_[ cj ] = static_cast< int8_t >( k );
  }
}

void
EventHistoryStore::complete_block_segment_( const long t_last )
{
  const long s = t_last >> shift_;
  const long blk = s >> block_shift_;
  const long j = s & block_mask_;
  if ( blocks_.empty() )
  {
    block_base_ = blk;
  }
  if ( blk < block_base_ )
  {
    return;
  }
  while ( static_cast< long >( blocks_.size() ) <= blk - block_base_ )
  {
    blocks_.emplace_back();
  }
  Block& block = blocks_[ blk - block_base_ ];
  if ( not block.sums )
  {
    block.sums = allocate_chunk_( block_mask_ + 1 );
  }
  const long S = mask_ + 1;
  const long row_stride = n_columns_ * stride_;
  const long mo = 2 + 2 * n_lambda_;  // forward sums (M, G, N) within a filter; suffix sums (Q, K, W) at 1
  const long group = 1 + 2 * n_lambda_;
  double* bf = block.sums.get() + j * row_stride;
  const double* seg = entry( t_last, 0 );  // forward sums over the whole segment
  // with a part of length 0 in front, a join copies: kappa^0 = lambda^0 = 1 and the first part's sums are 0
  auto copy_group = [ & ]( const double* from, const long of, double* to, const long ot )
  {
    for ( long c = 0; c < n_columns_; ++c )
    {
      for ( int f = 0; f < n_filters_; ++f )
      {
        const long o = c * stride_ + 1 + f * filter_stride_;
        std::copy( from + o + of, from + o + of + group, to + o + ot );
      }
    }
  };
  if ( j == 0 )
  {
    copy_group( seg, mo, bf, mo );
    block.bf_next = 1;
  }
  else if ( block.bf_next == j )
  {
    join_sums_( bf - row_stride, mo, j * S, seg, mo, S, bf, mo );
    block.bf_next = j + 1;
  }
  else
  {
    block.bf_next = -1;  // a segment of the block was not held: no prefix sums in this block
  }
  if ( j != block_mask_ )
  {
    return;
  }
  // the block is complete: suffix sums, backward over the segments held
  const long first_step = ( blk << block_shift_ ) << shift_;
  for ( long i = block_mask_; i >= 0; --i )
  {
    const long R = first_step + i * S;
    if ( not segment_held( R ) )
    {
      break;
    }
    double* bs = block.sums.get() + i * row_stride;
    if ( i == block_mask_ )
    {
      copy_group( entry( R + mask_, 0 ), mo, bs, 1 );
    }
    else
    {
      join_sums_( entry( R + mask_, 0 ), mo, S, bs + row_stride, 1, ( block_mask_ - i ) * S, bs, 1 );
    }
    block.bs_from = i;
  }
}

long
EventHistoryStore::oldest_read_segment_( const long limit ) const
{
  // Scanned once per segment (prune): a segment's reader counts are a few rows of int32 per column, read in order,
  // where a running total per segment would cost two updates per synapse and spike.
  const long c_end = std::min( limit, chunk_base_ + static_cast< long >( chunks_.size() ) );
  const long n = ( mask_ + 1 ) * n_columns_;
  for ( long c = chunk_base_; c < c_end; ++c )
  {
    const int32_t* counts = reader_chunks_[ c - chunk_base_ ].get();
    if ( counts and std::any_of( counts, counts + n, []( int32_t r ) { return r != 0; } ) )
    {
      return c;
    }
  }
  return limit;
}

void
EventHistoryStore::release_summary_( const long a, const long column )
{
  const long key = a * n_columns_ + column;
  const auto it = summaries_.find( key );
  if ( it != summaries_.end() and --it->second.readers <= 0 )
  {
    summaries_.erase( it );
    if ( cached_key_ == key )
    {
      cached_key_ = -1;
    }
  }
}

void
EventHistoryStore::summarize_segment_( const long c )
{
  const long first = c << shift_;
  const int32_t* counts = reader_chunks_[ c - chunk_base_ ].get();
  for ( long r = 0; r <= mask_; ++r )
  {
    for ( long j = 0; j < n_columns_; ++j )
    {
      const int32_t n = counts[ r * n_columns_ + j ];
      if ( n > 0 )
      {
        WindowSummary& w = summaries_[ ( first + r ) * n_columns_ + j ];
        nodes_[ j ]->summarize_event_window( first + r, w );
        w.readers = n;
      }
    }
  }
}

void
EventHistoryStore::prune( const long t_keep, const long cutoff )
{
  // Examined once per segment, by the first neuron of the thread that gets there.
  const long limit = t_keep >> shift_;
  if ( limit <= pruned_below_ or chunks_.empty() )
  {
    return;
  }
  pruned_below_ = limit;
  max_cutoff_ = std::max( max_cutoff_, cutoff );  // neurons of one store may differ in their cutoff
  auto drop = [ this ]( long c )
  {
    Chunk& chunk = chunks_[ c - chunk_base_ ];
    if ( chunk and spare_chunks_.size() < 4 )
    {
      spare_chunks_.push_back( std::move( chunk ) );
    }
    chunk.reset();
    reader_chunks_[ c - chunk_base_ ].reset();
    levels_ready_[ c - chunk_base_ ] = 0;
  };
  const long c_end = chunk_base_ + static_cast< long >( chunks_.size() );
  if ( max_cutoff_ < std::numeric_limits< long >::max() / 2 )
  {
    // Segment c can go once every window that reads it has passed its cutoff and is complete:
    // (c + 1) S - 1 + cutoff <= next_row_ - 1. Windows waiting for their next spike become summaries.
    // Summaries cost a few window evaluations each; a grace of summary_delay_segments segments lets most synapses
    // spike again first (then no summary is needed) at the price of that much more history.
    const long done = std::min( limit, ( ( next_row_ - max_cutoff_ ) >> shift_ ) - summary_delay_segments );
    for ( long c = chunk_base_; c < std::min( done, c_end ); ++c )
    {
      if ( chunks_[ c - chunk_base_ ] )
      {
        summarize_segment_( c );
        drop( c );
      }
    }
  }
  else
  {
    // Without a cutoff a window reads up to its next spike: keep every segment from the oldest window start on.
    const long oldest = oldest_read_segment_( limit );
    for ( long c = chunk_base_; c < std::min( oldest, c_end ); ++c )
    {
      drop( c );
    }
  }
  long dropped = 0;
  while ( dropped < static_cast< long >( chunks_.size() ) and not chunks_[ dropped ] and chunk_base_ + dropped < limit )
  {
    ++dropped;
  }
  chunks_.erase( chunks_.begin(), chunks_.begin() + dropped );
  reader_chunks_.erase( reader_chunks_.begin(), reader_chunks_.begin() + dropped );
  levels_ready_.erase( levels_ready_.begin(), levels_ready_.begin() + dropped );
  chunk_base_ += dropped;
  while ( not blocks_.empty() and ( ( block_base_ + 1 ) << block_shift_ ) <= chunk_base_ )
  {
    blocks_.pop_front();  // all of its segments are gone
    ++block_base_;
  }
}

}  // namespace nestgrad
