/*
 *  event_history_store.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENT_HISTORY_STORE_H
#define NESTGRAD_EVENT_HISTORY_STORE_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nestgrad
{

class EpropEventNode;

/**
 * What a synapse needs from a window that has passed its cutoff once its history is dropped: the first step of the
 * window (surrogate gradient and signals of entry a) and the rest as a linear map of the synapse's filtered traces
 * ebar[f] and trace coefficients Y[m] (total[f] = A[f] ebar[f] + sum_m B[f][m] Y[m],
 * ebar[f]' = kappa_f^(cutoff - 1) ebar[f] + sum_m D[f][m] Y[m]).
 */
struct WindowSummary
{
  long readers = 0;  //!< synapses whose window starts here
  double psi = 0.0;
  double signal[ 2 ] = { 0.0, 0.0 };
  double A[ 2 ] = { 0.0, 0.0 };
  double B[ 2 ][ 3 ] = {};
  double D[ 2 ][ 3 ] = {};
};

/**
 * The e-prop running sums of all event-driven neurons of one thread (and one entry layout), stored time-major: the
 * entries of all neurons for one step are contiguous. A presynaptic spike reaches its targets one after the other
 * and every target reads its entries at the same steps (where the synapse's window starts and ends), so these reads
 * stream through memory instead of jumping between neurons' separate histories: the difference between a cache
 * miss and a prefetched line per synapse and spike.
 *
 * The store also completes the running sums, one step (row) for all its neurons at a time, so that this work streams
 * through memory too. Entry layout (doubles): psi, then per filter f at 1 + f * (3 + 4 n_lambda): the signal, the
 * suffix sums Q, K[m], W[m] to the anchor E - 1 (the segment's last row; while the segment is being filled, its newest
 * completed row in steps where a window needs that) and the forward sums M, G[m], N[m] from the segment start R:
 *   Q[t] = sum_{u=t..E-1} L[u] kappa^(u-t),   K[m][t] = sum_{s=t..E-1} psi[s] lambda_m^(s-t) kappa^(E-1-s),
 *   W[m][t] = sum_{s=t..E-1} psi[s] lambda_m^(s-t) Q[s],
 *   M[t] = sum_{u=R..t} L[u] kappa^(u-R),   G[m][t] = kappa G[m][t-1] + psi[t] lambda_m^(t-R),
 *   N[m][t] = sum_{u=R..t} L[u] G[m][u].
 *
 * Memory is allocated per segment (segment steps x neurons x stride doubles). With a finite cutoff a segment is
 * dropped 8 segments after every window that can read it has passed its cutoff (most synapses spike again within
 * that grace); the windows that start in it and still have synapses waiting are first reduced to a WindowSummary
 * each. Memory is then bounded by (cutoff + 10 segments) steps of entries plus one summary per waiting synapse
 * start. Without a cutoff
 * a segment is dropped when no synapse's window starts in or before it (as NEST keeps its history).
 *
 * Second level: blocks of 2^block_shift segments. When a segment completes, the forward sums of its last row (the
 * sums over the whole segment) are joined to the block's prefix sums BF (block start to the segment's end); when a
 * block completes, its suffix sums BS (each segment's start to the block end) are joined backward. Joining two
 * consecutive parts A then B of lengths L_A, L_B (per filter with constant kappa, per trace constant lambda):
 *   M = M_A + kappa^L_A M_B,   G = kappa^L_B G_A + lambda^L_A G_B,   N = N_A + kappa M_B G_A + lambda^L_A N_B,
 * sums of non-negative weights only (no subtraction, no growth). A window that crosses blocks then reads one entry
 * per block instead of one per segment. Block entries have the layout of row entries: BS in the place of the
 * suffix sums (Q, K, W), BF in the place of the forward sums (M, G, N).
 *
 * Inside a block, groups: each segment's chunk also holds, in n_levels_ extra rows, the forward sums over the 2^k
 * segments from its start (k = 1 .. n_levels_), joined from two groups of 2^(k-1) when the last segment of the group
 * completes; a window part of n whole segments then costs O(log n) lookups instead of n.
 */
class EventHistoryStore
{
public:
  //! Trace constants of one neuron (its column); the power tables hold base^k for 0 <= k <= 2^shift at least.
  struct Constants
  {
    double kappa[ 2 ];
    double lambda[ 3 ];
    const double* kappa_pow[ 2 ];
    const double* lambda_pow[ 3 ];
  };

  /**
   * The store of this thread for n_filters x n_lambda sums and segments of 2^shift steps; returns the column.
   * blocks_fit: the column's trace constants stay far from underflow over a block of the second level (if one
   * column's do not, the store keeps only the first level).
   */
  static EventHistoryStore* attach( size_t thread,
    int n_filters,
    int n_lambda,
    int shift,
    const Constants& constants,
    bool blocks_fit,
    EpropEventNode* node,
    long& column );
  //! A neuron of the store is deleted; the store goes when its last neuron does.
  static void detach( EventHistoryStore* store );

  double*
  entry( const long t, const long column ) const
  {
    return chunks_[ ( t >> shift_ ) - chunk_base_ ].get() + ( ( t & mask_ ) * n_columns_ + column ) * stride_;
  }
  //! Whether the segment holding step t is held (t >= 0).
  bool
  segment_held( const long t ) const
  {
    const long c = ( t >> shift_ ) - chunk_base_;
    return c >= 0 and c < static_cast< long >( chunks_.size() ) and chunks_[ c ] != nullptr;
  }
  //! Asks the cache for the entries of rows t and t + 1 of a column (if held), which a window from t reads first.
  void
  prefetch( const long t, const long column ) const
  {
    if ( t >= 0 and segment_held( t ) )
    {
      const char* p = reinterpret_cast< const char* >( entry( t, column ) );
      __builtin_prefetch( p );
      __builtin_prefetch( p + 64 );
      if ( segment_held( t + 1 ) )
      {
        const char* q = reinterpret_cast< const char* >( entry( t + 1, column ) );
        __builtin_prefetch( q );
        __builtin_prefetch( q + 64 );
      }
    }
  }
  //! Allocates the segment of step t (zeroed) if needed; entries up to t exist.
  void ensure_segment( long t );
  //! Completes the running sums of every row up to and including t (all learning signals of these rows arrived).
  void finalize_through( long t );
  /**
   * Whether the suffix sums of the segment starting at row R run to row end - 1: the segment's end once it is
   * complete; for the segment being filled, its newest completed row, to which the sums are then moved (once per
   * step for all columns, and only in steps where a window needs it: a window that starts and ends in that segment).
   */
  bool
  suffix_sums_reach( const long R, const long end )
  {
    const long E = R + mask_ + 1;
    if ( next_row_ >= E )
    {
      return end == E;
    }
    if ( end != next_row_ or not anchor_current_ )
    {
      return false;
    }
    if ( anchor_ != end - 1 )
    {
      suffix_sums_( R, end - 1 );
      anchor_ = end - 1;
    }
    return true;
  }
  //! First row whose running sums are not complete.
  long
  next_row() const
  {
    return next_row_;
  }

  //! A synapse of the neuron in `column` moves its window start from step a_old (< 0: none) to a_new.
  void
  move_reader( const long a_old, const long a_new, const long column )
  {
    if ( a_old >= 0 )
    {
      if ( segment_held( a_old ) )
      {
        --readers( a_old, column );
      }
      else
      {
        release_summary_( a_old, column );
      }
    }
    ++readers( a_new, column );
  }
  int32_t&
  readers( const long t, const long column ) const
  {
    return reader_chunks_[ ( t >> shift_ ) - chunk_base_ ][ ( t & mask_ ) * n_columns_ + column ];
  }
  //! The summary of the window that starts at step a in `column` (nullptr if there is none).
  const WindowSummary*
  summary( const long a, const long column ) const
  {
    const long key = a * n_columns_ + column;
    if ( key != cached_key_ )  // one event asks several times
    {
      const auto it = summaries_.find( key );
      cached_key_ = key;
      cached_summary_ = it == summaries_.end() ? nullptr : &it->second;
    }
    return cached_summary_;
  }
  long
  summaries_held() const
  {
    return static_cast< long >( summaries_.size() );
  }
  //! Segments per block of the second level: 2^block_shift_.
  static constexpr int block_shift_ = 5;
  //! Steps per block (0: no second level, when a trace constant would underflow over a block).
  long
  block_steps() const
  {
    return block_level_ ? ( mask_ + 1 ) << block_shift_ : 0;
  }
  /**
   * Block entry of the segment holding step t, if its sums are available (nullptr if not): `suffix` asks for BS
   * (from the segment's start to its block's end, the block complete), otherwise for BF (from the block's start to
   * the segment's end).
   */
  const double*
  block_entry( const long t, const long column, const bool suffix ) const
  {
    const long s = t >> shift_;
    const long i = ( s >> block_shift_ ) - block_base_;
    if ( i < 0 or i >= static_cast< long >( blocks_.size() ) or not blocks_[ i ].sums )
    {
      return nullptr;
    }
    const Block& block = blocks_[ i ];
    const long j = s & block_mask_;
    if ( suffix ? j < block.bs_from : j >= block.bf_next )
    {
      return nullptr;
    }
    return block.sums.get() + ( j * n_columns_ + column ) * stride_;
  }

  /**
   * Forward sums over the 2^k segments from the segment starting at step R (1 <= k <= n_levels_), in the layout of
   * a row entry, if they are available (nullptr if not).
   */
  const double*
  level_entry( const long R, const int k, const long column ) const
  {
    const long c = ( R >> shift_ ) - chunk_base_;
    if ( c < 0 or c >= static_cast< long >( chunks_.size() ) or levels_ready_[ c ] < k or not chunks_[ c ] )
    {
      return nullptr;
    }
    return chunks_[ c ].get() + ( ( mask_ + k ) * n_columns_ + column ) * stride_;
  }
  //! Groups of 2, 4, ..., 2^n_levels_ segments (inside blocks windows cost O(log) lookups).
  static constexpr int n_levels_ = 4;

  //! Drops the segments before t_keep that no window can read; windows read at most cutoff steps.
  void prune( long t_keep, long cutoff );

  long
  segments_held() const
  {
    long n = 0;
    for ( const auto& c : chunks_ )
    {
      n += c ? 1 : 0;
    }
    return n;
  }

private:
  EventHistoryStore( int n_filters, int n_lambda, int shift );
  void release_summary_( long a, long column );
  //! Summaries of the waiting windows that start in segment c (before it is dropped).
  void summarize_segment_( long c );
  //! Suffix sums of rows R .. t_last to t_last (backward, all columns at a time).
  void suffix_sums_( long R, long t_last );
  //! Without a cutoff: the first held segment from which a window starts (segment limit if there is none before it).
  long oldest_read_segment_( long limit ) const;
  //! Adds a column: re-lays existing segments out for the wider rows.
  long add_column_();
  //! Sums over the groups of 2^k segments that segment s completes (levels, in rows S.. of the groups' first chunks).
  void complete_levels_( long s );
  //! Second level: joins the segment whose last row is t_last to its block's prefix sums (and suffix sums).
  void complete_block_segment_( long t_last );
  /**
   * Joins the sums of a (first, length la) and b (length lb) into out, per column (group offsets within the filter:
   * M, G[m], N[m] at the same place in all three).
   */
  void join_sums_( const double* a, long oa, long la, const double* b, long ob, long lb, double* out, long oo ) const;

  bool anchor_current_;  //!< suffix sums of the segment being filled are moved to its newest row when windows need it
  long anchor_ = -1;  //!< newest row the suffix sums of the segment being filled reach
  int n_filters_;
  int n_lambda_;
  long filter_stride_;
  long stride_;
  int shift_;
  long mask_;
  long n_columns_ = 0;
  long n_neurons_ = 0;  //!< attached and not yet deleted
  std::vector< Constants > constants_;  //!< per column
  long t_end_ = 0;  //!< rows up to t_end_ - 1 exist
  long next_row_ = 0;
  struct FreeChunk
  {
    void operator()( double* p ) const;
  };
  using Chunk = std::unique_ptr< double[], FreeChunk >;
  //! A zeroed segment (rows x columns entries).
  Chunk allocate_chunk_( long rows ) const;
  std::vector< Chunk > chunks_;
  std::vector< std::unique_ptr< int32_t[] > > reader_chunks_;  //!< per segment: synapses whose window starts at (row, column)
  std::vector< int8_t > levels_ready_;  //!< per segment: levels whose sums (from its start) are joined
  std::vector< EpropEventNode* > nodes_;  //!< per column
  std::unordered_map< long, WindowSummary > summaries_;  //!< by window start * n_columns_ + column
  mutable long cached_key_ = -1;
  mutable const WindowSummary* cached_summary_ = nullptr;
  std::vector< Chunk > spare_chunks_;  //!< dropped segments for reuse (no new pages)
  long chunk_base_ = 0;
  long pruned_below_ = 0;
  long max_cutoff_ = 0;

  // second level (blocks of segments)
  static constexpr long block_mask_ = ( 1L << block_shift_ ) - 1;
  bool block_level_ = true;
  struct Block
  {
    Chunk sums;  //!< per segment of the block and column: BS, BF
    long bf_next = 0;  //!< BF is joined for segments 0 .. bf_next - 1 (-1: chain broken, a segment was not held)
    long bs_from = block_mask_ + 1;  //!< BS is joined for segments bs_from .. end (once the block is complete)
  };
  std::deque< Block > blocks_;
  long block_base_ = 0;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENT_HISTORY_STORE_H
