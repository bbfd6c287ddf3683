/*
 *  event_history_store.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENT_HISTORY_STORE_H
#define NESTGRAD_EVENT_HISTORY_STORE_H

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

namespace nestgrad
{

/**
 * The e-prop running sums of all event-driven neurons of one thread (and one entry layout), stored time-major: the
 * entries of all neurons for one step are contiguous. A presynaptic spike reaches its targets one after the other
 * and every target reads its entries at the same steps (where the synapse's window starts and ends), so these reads
 * stream through memory instead of jumping between neurons' separate histories: the difference between a cache
 * miss and a prefetched line per synapse and spike.
 *
 * Memory is allocated per segment (segment steps x neurons x stride doubles). A segment is dropped when no synapse
 * of any neuron of the store can read it: the store counts, per segment, the synapses whose window starts there, and
 * a window reads at most `cutoff` steps from its start.
 */
class EventHistoryStore
{
public:
  //! The store of this thread for entries of `stride` doubles and segments of 2^shift steps; returns the column.
  static EventHistoryStore* attach( size_t thread, long stride, int shift, long& column );
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
  //! Allocates the segment of step t (zeroed) if needed.
  void ensure_segment( long t );

  //! A synapse's window start moves from step a_old (< 0: none) to a_new.
  void
  move_reader( const long a_old, const long a_new )
  {
    if ( a_old >= 0 )
    {
      const long i = ( a_old >> shift_ ) - count_base_;
      if ( i >= 0 and i < static_cast< long >( reader_counts_.size() ) )
      {
        --reader_counts_[ i ];
      }
    }
    add_reader_( a_new >> shift_ );
  }
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
  EventHistoryStore( long stride, int shift );
  void add_reader_( long segment );
  //! Adds a column: re-lays existing segments out for the wider rows.
  long add_column_();

  long stride_;
  int shift_;
  long mask_;
  long n_columns_ = 0;
  long n_neurons_ = 0;  //!< attached and not yet deleted
  std::vector< std::unique_ptr< double[] > > chunks_;
  long chunk_base_ = 0;
  long pruned_below_ = 0;
  long max_cutoff_ = 0;
  std::deque< long > reader_counts_;
  long count_base_ = 0;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENT_HISTORY_STORE_H
