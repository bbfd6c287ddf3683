/*
 *  eprop_event_node.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_EVENT_NODE_H
#define NESTGRAD_EPROP_EVENT_NODE_H

#include <cstddef>
#include <deque>
#include <vector>

// NEST public headers
#include "eprop_archiving_node_recurrent.h"

namespace nestgrad
{

/**
 * What an eprop_event_synapse keeps for its target between two presynaptic spikes: the presynaptic trace as
 * coefficients of the target's geometric sequences at the window start (their meaning is the target model's) and
 * the filtered eligibility traces of the task and regularisation terms.
 */
struct EventEpropTrace
{
  double y[ 2 ] = { 0.0, 0.0 };
  double e_bar = 0.0;
  double e_bar_reg = 0.0;
};

/**
 * Base of nestgrad's recurrent e-prop neurons that support eprop_event_synapse (docs/event_driven_eprop.md).
 *
 * The neuron keeps, once per step, sums of its learning signal and surrogate gradient weighted by powers of its
 * trace constants, restarted every segment_ steps: forward sums from the segment start and, once the segment is
 * complete, suffix sums to its end. A synapse gets the gradient of a whole inter-spike window from one entry per
 * segment it crosses (suffix sums for the first, forward sums for the last, suffix sums of the segment start for
 * those in between) instead of a loop over every step. No sum is ever subtracted from another, so nothing cancels:
 * the result is as exact as the step-by-step loop. Only a window that starts and ends inside one segment is summed
 * step by step (at most segment_ steps).
 *
 * A model supplies its trace constants (lambda_m, up to three geometric sequences) through
 * configure_event_history_(), appends one entry per step with its surrogate gradient and rate regularisation, adds
 * learning signals as they arrive, and implements event_gradient() for its own presynaptic trace. The base class
 * also derives from NEST's e-prop archiving node, so the same neuron works with NEST's eprop_synapse.
 */
class EpropEventNode : public nest::EpropArchivingNodeRecurrent< false >
{
public:
  EpropEventNode();
  EpropEventNode( const EpropEventNode& );

  //! Called when an eprop_event_synapse connects to this neuron.
  void
  register_event_synapse()
  {
    ++event_indegree_;
  }

  /**
   * Gradient of one synapse over the window from its previous presynaptic spike (t_spike_previous) to this one
   * (t_spike), both in steps; propagates the synapse's trace to the new window start. weight is the weight the
   * previous spike was transmitted with (it selects the synaptic filter it entered).
   */
  virtual double event_gradient( long t_spike, long t_spike_previous, double weight, EventEpropTrace& trace ) = 0;

  /**
   * A synapse's window start moves from t_spike_previous (0: the synapse had no spike yet) to t_spike. The counts
   * per time bucket tell which history entries no synapse can need any more.
   */
  void move_event_reader( long t_spike_previous, long t_spike );

  //! Number of history entries held (recordable as a measure of memory).
  double
  get_event_history_size() const
  {
    return static_cast< double >( count_ );
  }

protected:
  //! Trace constants: lambda[0..n_lambda) of the presynaptic trace, kappa of the task and regularisation filters.
  void configure_event_history_( int n_lambda, const double* lambda, double kappa, double kappa_reg, bool regularize );
  void clear_event_history_();
  bool
  event_history_active_() const
  {
    return event_indegree_ > 0;
  }

  //! New entry for step t (entries are contiguous in t).
  void append_event_entry_( long t, double surrogate_gradient, double firing_rate_reg );
  //! Adds a learning signal to entry t (ignored if no synapse can need the entry any more).
  void add_event_learning_signal_( long t, double learning_signal );
  //! Completes the running sums of every entry up to and including t (its learning signal has arrived).
  void finalize_event_entries_( long t );
  //! Drops entries no synapse can need; t_now is the step being updated.
  void prune_event_history_( long t_now );

  double event_surrogate_gradient_( long t ) const;
  //! Learning signal of entry t, 0 if the entry is not held (for recording).
  double event_learning_signal_or_zero_( long t ) const;
  double event_signal_( long t, int filter ) const;

  /**
   * Window sums over entries [a, b), a > tau, for a presynaptic trace sum_m Y[m] lambda_m^(t - tau): adds the task
   * and regularisation gradients to total[0] and total[1] and advances the filtered traces ebar[0..1] (at a - 1 on
   * entry, at b - 1 on return; ebar[1] without the 1 - kappa_reg factor).
   */
  void event_window_( long a, long b, double ebar[ 2 ], const double* Y, long tau, double total[ 2 ] ) const;

  //! base^n for n >= 0 from a table of base^k, k <= segment (a few multiplications instead of std::pow).
  double table_pow_( const std::vector< double >& table, long n ) const;

  const std::vector< double >&
  lambda_pow_table_( int m ) const
  {
    return lambda_pow_[ m ];
  }
  const std::vector< double >&
  kappa_pow_table_( int f ) const
  {
    return kappa_pow_[ f ];
  }

  size_t event_indegree_ = 0;

private:
  double* entry_( long t );
  const double* entry_( long t ) const;

  // configuration (pre_run_hook)
  int n_lambda_ = 0;
  int n_filters_ = 1;  //!< 2 if the rate regularisation is on
  /**
   * Doubles per entry: psi, then per filter (offset filter_offset_(f)): the signal, the forward sums M, G[m], N[m]
   * from the segment start R, and the suffix sums Q, K[m], W[m] to the segment end E (valid once it is complete):
   *   M[t] = sum_{u=R..t} L[u] kappa^(u-R),         G[m][t] = kappa G[m][t-1] + psi[t] lambda_m^(t-R),
   *   N[m][t] = sum_{u=R..t} L[u] G[m][u],
   *   Q[t] = L[t] + kappa Q[t+1],   K[m][t] = psi[t] kappa^(E-1-t) + lambda_m K[m][t+1],
   *   W[m][t] = psi[t] Q[t] + lambda_m W[m][t+1].
   */
  long stride_ = 0;
  long filter_stride_ = 0;
  long segment_ = 1;
  double kappa_[ 2 ] = { 0.0, 0.0 };
  double lambda_[ 3 ] = { 0.0, 0.0, 0.0 };
  std::vector< double > kappa_pow_[ 2 ];  //!< kappa^k, 0 <= k <= segment
  std::vector< double > lambda_pow_[ 3 ];  //!< lambda_m^k

  long
  filter_offset_( int f ) const
  {
    return 1 + f * filter_stride_;
  }
  //! Suffix sums of the segment that ends with entry t_last (every entry of it that is held).
  void complete_segment_( long t_last );

  // entries: buffer_ holds count_ entries from t_first_, starting at entry index head_
  std::vector< double > buffer_;
  size_t head_ = 0;
  size_t count_ = 0;
  long t_first_ = 0;
  long t_next_sum_ = 0;  //!< first entry whose running sums are not complete

  // readers: number of synapses whose window starts in bucket (bucket_base_ + i)
  static constexpr long bucket_steps_ = 32;
  std::deque< long > reader_counts_;
  long bucket_base_ = 0;
};

inline double*
EpropEventNode::entry_( const long t )
{
  return buffer_.data() + ( head_ + static_cast< size_t >( t - t_first_ ) ) * stride_;
}

inline const double*
EpropEventNode::entry_( const long t ) const
{
  return buffer_.data() + ( head_ + static_cast< size_t >( t - t_first_ ) ) * stride_;
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_EVENT_NODE_H
