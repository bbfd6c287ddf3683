/*
 *  eprop_event_node.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_EVENT_NODE_H
#define NESTGRAD_EPROP_EVENT_NODE_H

#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

// NEST public headers
#include "eprop_archiving_node_recurrent.h"
#include "event.h"
#include "exceptions.h"

#include "event_history_store.h"

namespace nestgrad
{

/**
 * What an eprop_event_synapse keeps for its target between two presynaptic spikes: the presynaptic trace one step
 * before the next window starts (its components are the target model's) and the filtered eligibility traces of the
 * task and regularisation terms.
 */
struct EventEpropTrace
{
  double y[ 5 ] = { 0.0, 0.0, 0.0, 0.0, 0.0 };  //!< components: the target model's (up to five)
  double e_bar = 0.0;
  double e_bar_reg = 0.0;
  bool pending = false;  //!< the previous spike still has to enter the trace (windows of one step)
};

/**
 * Base of nestgrad's recurrent e-prop neurons that support eprop_event_synapse (docs/event_driven_eprop.md).
 *
 * The neuron's sums of its learning signal and surrogate gradient, weighted by powers of its trace constants and
 * restarted every segment_ steps, live in the thread's EventHistoryStore (forward sums from the segment start, suffix
 * sums to the segment end or its newest step). A synapse gets the gradient of a whole inter-spike window from one
 * entry per segment it crosses instead of a loop over every step. No sum is ever subtracted from another, so nothing
 * cancels: the result is as exact as the step-by-step loop. Only a window that starts and ends inside one segment
 * before the suffix sums' anchor is summed step by step (fewer than segment_ steps).
 *
 * A model supplies its trace constants (lambda_m, up to three geometric sequences) through
 * configure_event_history_(), appends one entry per step with its surrogate gradient and rate regularisation, adds
 * learning signals as they arrive, and implements event_gradient() for its own presynaptic trace. The base class
 * also derives from NEST's e-prop archiving node, so the same neuron works with NEST's eprop_synapse; what every
 * recurrent e-prop neuron of nestgrad does the same way lives here once: the learning-signal input, the per-step
 * history and rate bookkeeping (eprop_history_step_()), flush events and the choice of the surrogate gradient.
 */
class EpropEventNode : public nest::EpropArchivingNodeRecurrent< false >
{
public:
  EpropEventNode();
  EpropEventNode( const EpropEventNode& );
  ~EpropEventNode() override;

  /**
   * End (exclusive) of the entries a window reads: the window runs from a = t_spike_previous - 1 to
   * t_spike - 1, cut at eprop_isi_trace_cutoff steps; throws for a cutoff below one step.
   */
  long event_window_end_( long t_spike, long t_spike_previous ) const;

  /**
   * The filtered traces and gradient after a window's first entry a, where the synapse's new spike has not entered
   * yet: x_a is the presynaptic trace there (ebar[1] is kept without the 1 - kappa_reg factor).
   */
  void event_first_entry_( long a, double x_a, double kappa, double kappa_reg, const EventEpropTrace& trace,
    double ebar[ 2 ], double g[ 2 ] ) const;
  /**
   * Stores the filtered traces at the next window start (decayed over the steps from the window's end to stop) and
   * returns the window's gradient.
   */
  double event_finish_( long stop, long end, double kappa_reg, const double ebar[ 2 ], const double g[ 2 ],
    EventEpropTrace& trace ) const;

  //! Called when an eprop_event_synapse connects to this neuron.
  void
  register_event_synapse()
  {
    ++event_indegree_;
  }

  /**
   * Gradient of one synapse over the window from its previous presynaptic spike (t_spike_previous) to this one
   * (t_spike), both in steps; propagates the synapse's trace to the new window start. weight is the weight the
   * previous spike was transmitted with (it selects the synaptic filter of models that route by sign); rport is the
   * connection's receptor port (models with one filter per port).
   */
  virtual double event_gradient( long t_spike,
    long t_spike_previous,
    double weight,
    size_t rport,
    EventEpropTrace& trace ) = 0;

  /**
   * Why this neuron cannot be a target of eprop_event_synapse (empty if it can). Checked when a synapse connects;
   * also in the status dictionary as event_synapse_refusal, so that network builders can check before connecting.
   */
  virtual std::string
  event_synapse_refusal() const
  {
    return {};
  }

  void get_status( Dictionary& d ) const override;

  using nest::Node::handle;
  using nest::Node::handles_test_event;

  /**
   * Learning signals from eprop_readout neurons (eprop_learning_signal_connection): each goes to NEST's e-prop
   * history (read by eprop_synapse) and, with eprop_event_synapse connected, to the event history's entry two steps
   * earlier, the entry NEST's history uses (store_event_learning_signal_()).
   */
  void handle( nest::LearningSignalConnectionEvent& ) override;
  size_t handles_test_event( nest::LearningSignalConnectionEvent&, size_t ) override;

  /**
   * A synapse's window start moves from t_spike_previous (0: the synapse had no spike yet) to t_spike. The number
   * of window starts per segment tells which segments of the history a synapse can still read (a window reads at
   * most eprop_isi_trace_cutoff steps from its start).
   */
  virtual void
  move_event_reader( const long t_spike_previous, const long t_spike, size_t )
  {
    // eprop_event_synapse makes this call itself for targets with a store (no virtual call): keep the two alike
    store_->move_reader( t_spike_previous > 0 ? t_spike_previous - 1 : -1, t_spike - 1, column_ );
  }

  /**
   * Reduces the window that starts at step a (a synapse's previous spike was at a + 1) and has passed its cutoff to
   * what the synapse will need at its next spike (called by the store before it drops the window's history).
   */
  void summarize_event_window( long a, WindowSummary& summary ) const;

  //! The store of the neuron's running sums and its column there (valid after the first simulation step).
  EventHistoryStore*
  event_store() const
  {
    return store_;
  }
  long
  event_column() const
  {
    return column_;
  }
  //! The first of the cache lines with the fields event_gradient() reads (for prefetching).
  const void*
  event_hot_address() const
  {
    return &store_;
  }

  //! Windows of this thread's neurons kept as summaries (their history was dropped; a synapse still waits).
  long
  get_event_window_summaries() const
  {
    return store_ ? store_->summaries_held() : 0;
  }

  //! Number of history entries held (recordable as a measure of memory).
  double
  get_event_history_size() const
  {
    return store_ ? static_cast< double >( store_->segments_held() * segment_ ) : 0.0;
  }

protected:
  //! Shift of NEST's e-prop history: offset_gen + delay_in_rec (two steps, as NEST's eprop_iaf).
  long get_shift() const override;
  bool is_eprop_recurrent_node() const override;

  /**
   * The surrogate gradient function called `name` (one of NEST's e-prop surrogate gradients); throws BadProperty
   * naming the value and the known names otherwise.
   */
  surrogate_gradient_function select_surrogate_gradient_( const std::string& name );

  /**
   * Sends a flush event (a spike event flagged as such) in step t (lag within the slice) if the neuron has been
   * silent for flush_event_send_interval; the caller checks this in steps without a spike of its own.
   */
  void send_flush_event_if_due_( long t, long lag );

  /**
   * The e-prop bookkeeping at the end of step t, once its spike z (0 or 1) and surrogate gradient are known: NEST's
   * history entry (read by eprop_synapse) with the firing-rate regularisation (f_target in Hz); with
   * eprop_event_synapse connected also the rate estimate, which the archiving node updates only when eprop_synapse
   * is connected (same expression), and the event history's entry (append_event_step_()). Returns the learning
   * signal of the entry that is complete now, as NEST's e-prop neurons record it.
   */
  double eprop_history_step_( long t, double z, double surrogate_gradient, double f_target, double kappa_reg,
    double c_reg );

  /**
   * Appends entry t to the event history (called with eprop_event_synapse connected): the running sums of the
   * thread's store by default, models with another store override it. Returns the learning signal to record: that
   * of entry t - 2 (complete now) if no eprop_synapse keeps NEST's history, else learning_signal (NEST's history's).
   */
  virtual double append_event_step_( long t, double surrogate_gradient, double learning_signal );

  /**
   * Adds a learning signal to entry t of the event history (called with eprop_event_synapse connected): the running
   * sums of the thread's store by default, models with another store override it.
   */
  virtual void
  store_event_learning_signal_( const long t, const double learning_signal )
  {
    add_event_learning_signal_( t, learning_signal );
  }

  /**
   * Trace constants: lambda[0..n_lambda) of the presynaptic trace (equal values share one set of sums), kappa of the
   * task filter, kappa_reg of the regularisation filter (one filter for both if kappa_reg == kappa: the two filtered
   * traces are then equal and the signals add).
   */
  void configure_event_history_( int n_lambda, const double* lambda, double kappa, double kappa_reg, bool regularize );
  /**
   * The filters of the eligibility traces: checks kappa (and kappa_reg if regularize) and returns their number, 1
   * (one filter; the regularisation signal, if any, is added to the learning signal times reg_factor = 1 - kappa_reg)
   * or 2 (kappa_reg != kappa: a separate regularisation filter, reg_factor = 0).
   */
  static int event_filters_( double kappa, double kappa_reg, bool regularize, double& reg_factor );
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
  //! Drops the segments no synapse can read any more; t_now is the step being updated.
  void prune_event_history_( long t_now );

  /**
   * Surrogate gradient and signals of entry t (signal[1] only with a separate regularisation filter, else 0), from
   * the window summary if the entry was dropped (throws if there is none).
   */
  void
  event_entry_values_( const long t, double& psi, double signal[ 2 ] ) const
  {
    signal[ 0 ] = signal[ 1 ] = 0.0;
    if ( held_( t ) )
    {
      const double* e = entry_( t );
      psi = e[ 0 ];
      for ( int f = 0; f < n_filters_; ++f )
      {
        signal[ f ] = e[ filter_offset_( f ) ];
      }
      return;
    }
    psi = summarized_surrogate_gradient_( t );
    for ( int f = 0; f < n_filters_; ++f )
    {
      signal[ f ] = summarized_signal_( t, f );
    }
  }
  //! Learning signal of entry t, 0 if the entry is not held (for recording).
  double event_learning_signal_or_zero_( long t ) const;

  //! Slot of the sums that lambda[m] uses (equal lambdas share a slot).
  int
  lambda_slot_( int m ) const
  {
    return lambda_slot_of_[ m ];
  }
  int
  n_lambda_slots_() const
  {
    return n_lambda_;
  }
  bool
  separate_reg_filter_() const
  {
    return n_filters_ == 2;
  }
  //! lambda_slot^n and kappa_f^n for n >= 0.
  double
  lambda_power_( int slot, long n ) const
  {
    return table_power_( lambda_pow_[ slot ], n );
  }
  double
  kappa_power_( int f, long n ) const
  {
    return table_power_( kappa_pow_[ f ], n );
  }

  /**
   * Window sums over entries [a, b), a > tau, for a presynaptic trace sum_slot Y[slot] lambda_slot^(t - tau): adds
   * the gradients of the filters to total[0] (and total[1] with a separate regularisation filter) and advances the
   * filtered traces ebar[] (at a - 1 on entry, at b - 1 on return; ebar[1] without the 1 - kappa_reg factor).
   */
  void event_window_( long a, long b, double ebar[ 2 ], const double* Y, long tau, double total[ 2 ] ) const;
  /**
   * One part of a window, `steps` long, from a group of sums of entry e (at `group` within each filter: M, G[m], N[m]
   * or Q, K[m], W[m], the same shape): adds its gradient to total[] and advances the filtered traces ebar[].
   */
  void
  apply_sums_( const double* e, const long group, const long steps, double ebar[ 2 ], const double* lam, double total[ 2 ] )
    const
  {
    for ( int f = 0; f < n_filters_; ++f )
    {
      const double* g = e + filter_offset_( f ) + group;
      double sum = ebar[ f ] * kappa_[ f ] * g[ 0 ];
      double new_ebar = ebar[ f ] * kappa_pow_[ f ][ steps ];
      for ( int m = 0; m < n_lambda_; ++m )
      {
        new_ebar += lam[ m ] * g[ 1 + m ];
        sum += lam[ m ] * g[ 1 + n_lambda_ + m ];
      }
      total[ f ] += sum;
      ebar[ f ] = new_ebar;
    }
  }
  //! event_window_() for a window whose history was dropped: from its summary; throws if there is none.
  bool apply_window_summary_( long a, long b, double ebar[ 2 ], const double* Y, long tau, double total[ 2 ] ) const;

  size_t event_indegree_ = 0;
  mutable long block_sums_used_ = 0;  //!< window parts read from the store's second level (status)

  // -- the fields event_gradient() and event_window_() read, together (a few cache lines, prefetched by the synapse)
  // entries: column column_ of the thread's store (time-major, shared with the other neurons of the thread); this
  // neuron's entries t_first_ .. t_end_ - 1 exist where their segment is held
  EventHistoryStore* store_ = nullptr;
  long column_ = 0;
  long t_first_ = 0;
  long t_end_ = 0;
  long event_cutoff_ = 0;  //!< eprop_isi_trace_cutoff in steps (set in pre_run_hook)
  double event_param_[ 13 ] = {};  //!< the model's constants for event_gradient() (set in pre_run_hook)
  int n_lambda_ = 0;  //!< distinct trace constants
  int n_filters_ = 1;  //!< 2 with a separate regularisation filter
  int lambda_slot_of_[ 3 ] = { 0, 1, 2 };
  int segment_shift_ = 0;
  long segment_ = 1;  //!< a power of two
  long filter_stride_ = 0;
  double kappa_[ 2 ] = { 0.0, 0.0 };
  double lambda_[ 3 ] = { 0.0, 0.0, 0.0 };
  // base^k for 0 <= k <= power_table_steps_, shared by all neurons with the same constant (one copy in the cache)
  const double* kappa_pow_[ 2 ] = { nullptr, nullptr };
  const double* lambda_pow_[ 3 ] = { nullptr, nullptr, nullptr };

private:
  double summarized_surrogate_gradient_( long t ) const;
  double summarized_signal_( long t, int filter ) const;
  double* entry_( long t );
  const double* entry_( long t ) const;
  //! Whether entry t is held (its segment was not dropped).
  bool held_( long t ) const;
  //! Powers are tabulated for 0 <= k <= power_table_steps_ (a power of two); longer ones multiply entries.
  static constexpr int power_table_shift_ = 10;
  static constexpr long power_table_steps_ = 1L << power_table_shift_;
  //! base^n from a table of base^k (no division: this runs a few times per spike and synapse).
  static double
  table_power_( const double* table, long n )
  {
    if ( n <= power_table_steps_ )
    {
      return table[ n ];
    }
    double result = table[ n & ( power_table_steps_ - 1 ) ];
    for ( long q = n >> power_table_shift_; q > 0; --q )
    {
      result *= table[ power_table_steps_ ];
    }
    return result;
  }

  long
  filter_offset_( int f ) const
  {
    return 1 + f * filter_stride_;
  }
  //! The shared table of base^k.
  static const double* power_table_( double base );

  // configuration (pre_run_hook); the entry layout is EventHistoryStore's
  double reg_factor_ = 0.0;  //!< 1 - kappa_reg if the regularisation signal is added to the task filter's
  long stride_ = 0;
};

inline long
EpropEventNode::get_shift() const
{
  return offset_gen_ + delay_in_rec_;
}

inline bool
EpropEventNode::is_eprop_recurrent_node() const
{
  return true;
}

inline size_t
EpropEventNode::handles_test_event( nest::LearningSignalConnectionEvent&, const size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

inline double*
EpropEventNode::entry_( const long t )
{
  return store_->entry( t, column_ );
}

inline const double*
EpropEventNode::entry_( const long t ) const
{
  return store_->entry( t, column_ );
}

inline bool
EpropEventNode::held_( const long t ) const
{
  return t >= t_first_ and t < t_end_ and store_->segment_held( t );
}

inline void
EpropEventNode::event_first_entry_( const long a,
  const double x_a,
  const double kappa,
  const double kappa_reg,
  const EventEpropTrace& trace,
  double ebar[ 2 ],
  double g[ 2 ] ) const
{
  double psi;
  double signal[ 2 ];
  event_entry_values_( a, psi, signal );
  ebar[ 0 ] = trace.e_bar;
  ebar[ 1 ] = separate_reg_filter_() ? trace.e_bar_reg / ( 1.0 - kappa_reg ) : 0.0;
  const double e_a = psi * x_a;
  ebar[ 0 ] = kappa * ebar[ 0 ] + e_a;
  ebar[ 1 ] = kappa_reg * ebar[ 1 ] + e_a;
  g[ 0 ] = signal[ 0 ] * ebar[ 0 ];
  g[ 1 ] = signal[ 1 ] * ebar[ 1 ];
}

inline double
EpropEventNode::event_finish_( const long stop,
  const long end,
  const double kappa_reg,
  const double ebar[ 2 ],
  const double g[ 2 ],
  EventEpropTrace& trace ) const
{
  const bool separate_reg = separate_reg_filter_();
  trace.e_bar = ebar[ 0 ] * kappa_power_( 0, stop - end );
  // with one filter for both terms (kappa_reg == kappa) the regularisation trace is the task trace
  trace.e_bar_reg = ( 1.0 - kappa_reg ) * ( separate_reg ? ebar[ 1 ] * kappa_power_( 1, stop - end ) : trace.e_bar );
  return g[ 0 ] + ( separate_reg ? ( 1.0 - kappa_reg ) * g[ 1 ] : 0.0 );
}

inline void
EpropEventNode::finalize_event_entries_( const long t )
{
  if ( t >= store_->next_row() )  // once per step and store: the first synapse to read the newest row
  {
    store_->finalize_through( t );
  }
}

inline void
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
  if ( not held_( a ) or not held_( b - 1 ) or b - 1 >= store_->next_row() )
  {
    // a window past its cutoff whose history is gone: its summary (or an error)
    apply_window_summary_( a, b, ebar, Y, tau, total );
    return;
  }
  const long S = segment_;
  const long BL = store_->block_steps();
  const int nl = n_lambda_;
  const int nf = n_filters_;
  double lam[ 3 ];  // Y[m] lambda_m^(a - tau) at the start a of each part
  for ( int m = 0; m < nl; ++m )
  {
    lam[ m ] = Y[ m ] * table_power_( lambda_pow_[ m ], a - tau );
  }
  while ( a < b )
  {
    const long R = a & ~( S - 1 );
    if ( a == R and BL > 0 and b - a > S )
    {
      // second level: to the end of a's block (its suffix sums) or from the block's start to the last whole segment
      // of the window (its prefix sums), when the store has them
      const long block_start = a & ~( BL - 1 );
      const bool to_block_end = b >= block_start + BL;
      long part_end = to_block_end ? block_start + BL : b & ~( S - 1 );
      const double* e = nullptr;
      if ( to_block_end )
      {
        e = store_->block_entry( a, column_, true );
      }
      else if ( a == block_start and part_end - a >= 2 * S )
      {
        e = store_->block_entry( part_end - 1, column_, false );
      }
      bool suffix = to_block_end;
      if ( not e and b - a >= 2 * S )
      {
        // a group of 2^k whole segments from a (k as large as the window allows): O(log) lookups inside a block
        const long whole = ( b - a ) >> segment_shift_;
        const int k = std::min( EventHistoryStore::n_levels_, 63 - __builtin_clzl( static_cast< unsigned long >( whole ) ) );
        e = store_->level_entry( a, k, column_ );
        part_end = a + ( S << k );
        suffix = false;
      }
      if ( e )
      {
        apply_sums_( e, suffix ? 1 : 2 + 2 * nl, part_end - a, ebar, lam, total );
        for ( int m = 0; m < nl; ++m )
        {
          lam[ m ] *= lambda_pow_[ m ][ part_end - a ];
        }
        ++block_sums_used_;
        a = part_end;
        continue;
      }
    }
    const long end = std::min( b, R + S );
    if ( a == R )
    {
      // [R, end): forward sums (M, G, N) of entry end - 1
      apply_sums_( entry_( end - 1 ), 2 + 2 * nl, end - R, ebar, lam, total );
    }
    else if ( store_->suffix_sums_reach( R, end ) )
    {
      // [a, end) up to the anchor of the suffix sums (Q, K, W; the segment's last row, or its newest completed row)
      apply_sums_( entry_( a ), 1, end - a, ebar, lam, total );
    }
    else
    {
      // starts and ends inside one segment before the anchor (windows cut by the cutoff): step by step (fewer than
      // segment_ steps; the neurons' entries of one step are contiguous, so the synapses of one source stream)
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
        for ( int f = 0; f < nf; ++f )
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

#endif  // NESTGRAD_EPROP_EVENT_NODE_H
