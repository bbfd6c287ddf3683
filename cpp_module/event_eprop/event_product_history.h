/*
 *  event_product_history.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENT_PRODUCT_HISTORY_H
#define NESTGRAD_EVENT_PRODUCT_HISTORY_H

#include <cstddef>
#include <deque>
#include <memory>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace nestgrad
{

/**
 * Running sums and running products of one neuron and receptor port for eprop_event_synapse when the eligibility
 * recursion has coefficients that vary in time (docs/event_driven_eprop.md, "Time-varying coefficients").
 *
 * Between two presynaptic spikes the eligibility vector s (d <= 5 components) of a synapse follows
 *
 *     s[t] = A_t s[t-1],     e[t] = h_t . s[t-1],
 *
 * where the step map A_t and the output h_t depend only on the postsynaptic neuron: in the NESTML convention
 * (y = J s + b z, e = psi c . y, s = y + k e) A_t = J + psi[t] k (J^T c)^T and h_t = psi[t] J^T c, so spike-triggered
 * increments k (adaptation) make A_t change with the surrogate gradient every step; for eprop_glif3_psc A_t also
 * changes at spikes and during refractoriness. The products of these maps do not commute, so the window sums cannot
 * come from sums of geometric sequences; instead the neuron keeps, per step of a segment [R, E) of S steps and per
 * filter f (kappa_f, signal L_f),
 *
 *     forward from R:  F[t] = A_t F[t-1] (F[R-1] = I),   G_f[t] = kappa_f G_f[t-1] + h_t^T F[t-1],
 *                      M_f[t] = sum_{u=R..t} L_f[u] kappa_f^(u-R),   N_f[t] = sum_{u=R..t} L_f[u] G_f[u]
 *     back to E - 1:   P[a] = P[a+1] A_a (P[E] = I),   K_f[a] = kappa_f^(E-1-a) h_a^T + K_f[a+1] A_a,
 *                      Q_f[a] = L_f[a] + kappa_f Q_f[a+1],   W_f[a] = Q_f[a] h_a^T + W_f[a+1] A_a
 *
 * (the backward sums once the segment is complete). A window part [R, b) uses the forward sums of entry b - 1, a part
 * [a, E) the backward sums of entry a; a part inside a segment that is not complete is summed step by step (fewer
 * than S steps). As with the geometric sums, nothing is subtracted: the result is as exact as the step-by-step loop.
 *
 * Memory per step: 1 + n_filters (3 + 4 d) + 3 d^2 + d doubles (61 for d = 3 and two filters). History is kept from
 * the oldest window start a synapse still waits on, as NEST keeps its per-step history.
 */
class EventProductHistory
{
public:
  static constexpr int max_states = 5;
  //! Segments of 2^shift steps, 1 <= shift <= max_shift (configure()).
  static constexpr int max_shift = 5;

  EventProductHistory() = default;
  //! Copies of a node (NEST's prototypes) start without history.
  EventProductHistory( const EventProductHistory& );
  EventProductHistory& operator=( const EventProductHistory& ) = delete;

  /**
   * d states; `free` (d x d, row-major) is the map of a step beyond the cutoff (the step-by-step rule decays the
   * eligibility vector with it); one filter (kappa[0]; signals: learning signal + reg_factor x firing-rate
   * regularisation) or two (kappa[0] for the learning signal, kappa[1] for the firing-rate regularisation).
   */
  void configure( int d, const double* free, int n_filters, const double* kappa, int segment_shift );
  bool
  configured() const
  {
    return d_ > 0;
  }
  //! 2 with a separate regularisation filter
  int
  n_filters() const
  {
    return n_filters_;
  }

  /**
   * New entry for step t (entries are contiguous in t) with the step's map A (d x d), output h, and how a spike
   * entering in this step changes the state (B) and the trace (hz); the signal of filter 1 (or added to filter 0
   * times reg_factor) is `reg`.
   */
  void append( long t,
    double psi,
    const double* A,
    const double* h,
    const double* B,
    double hz,
    double reg,
    double reg_factor );
  //! Adds a learning signal to entry t (ignored if the entry is not held).
  void add_learning_signal( long t, double signal );
  //! Completes the sums of every entry up to and including t (its signals have arrived).
  void finalize_through( long t );

  //! Surrogate gradient and signal of filter f of entry t (throws if not held).
  double psi( long t ) const;
  double signal( long t, int f ) const;
  //! Learning signal (filter 0) of entry t, 0 if not held.
  double learning_signal_or_zero( long t ) const;

  /**
   * Sums of the window part [a, b) (entries complete): the state x = s[a-1] becomes s[b-1], the filtered traces
   * ebar[f] at a - 1 become those at b - 1, and the window's sum_t L_f[t] ebar_f[t] is added to total[f].
   */
  void window( long a, long b, double* x, double ebar[ 2 ], double total[ 2 ] ) const;

  /**
   * The window [a, end) of a synapse whose previous spike was at a + 1: entry a with the spike before it if it is
   * still pending, entry a + 1 with the new spike, then the running products; x = s[a-1] becomes s[end-1], ebar and
   * total as window(). From the window's summary if its entries were dropped (end must then be a + cutoff).
   */
  void spike_window( long a, long end, bool pending, double* x, double ebar[ 2 ], double total[ 2 ] ) const;

  //! x = free^n x (the decay beyond the cutoff, as the step-by-step rule).
  void decay( long n, double* x ) const;

  //! A synapse's window start moves from a_old (< 0: none) to a_new.
  void move_reader( long a_old, long a_new );
  /**
   * Drops the segments before t_keep that no window can read. With a cutoff (windows read at most `cutoff` entries)
   * a segment goes once every window starting in it has passed its cutoff (plus a grace segment); the windows of
   * synapses still waiting are first reduced to summaries. Without one (cutoff < 0) a segment goes when no window
   * starts in it.
   */
  void prune( long t_keep, long cutoff );

  long
  entries_held() const
  {
    return static_cast< long >( segments_.size() ) * segment_;
  }
  long
  summaries_held() const
  {
    return static_cast< long >( summaries_.size() );
  }
  //! Windows computed from summaries so far.
  long
  summaries_used() const
  {
    return summaries_used_;
  }

private:
  int shift_ = max_shift;
  long segment_ = 1L << max_shift;
  long mask_ = segment_ - 1;

  double* entry_( long t );
  const double* entry_( long t ) const;
  bool held_( long t ) const;
  void forward_( long t );
  void backward_( long R );
  /**
   * The window functions for NC synapse states at once (a synapse's window: NC = 1; a summary: one column per unit
   * input): X is d x NC (row-major), EB and T are 2 x NC (filtered traces, totals per filter).
   *
   * step_cols_: one step t with presynaptic spikes of weights z[c] entering: e = h_t . x + hz_t z, x = A_t x + B_t z.
   * window_cols_: window() for NC columns.  times_cols_: X = A X.
   */
  template < int NC >
  void step_cols_( long t, const double* z, double* X, double* EB, double* T ) const;
  template < int NC >
  void window_cols_( long a, long b, double* X, double* EB, double* T ) const;
  template < int NC >
  void times_cols_( const double* A, double* X ) const;
  static constexpr int summary_columns_ = 4 + max_states;
  //! spike_window() from the entries, with the new spike's weight `spike` (1; 0 and 1 for the summaries).
  void spike_window_entries_( long a, long end, double spike, double pending, double* x, double ebar[ 2 ], double total[ 2 ] ) const;
  //! The window from a as a linear map (summaries_), before its segment is dropped.
  void summarize_( long a, long cutoff );
  //! out = r A (row vector); A is d x d, row-major
  void row_times_( const double* r, const double* A, double* out ) const;

  // entry layout offsets
  long filter_offset_( int f ) const
  {
    return 1 + f * filter_stride_;
  }
  // within a filter: L, M, Q, then G[d], N[d], K[d], W[d]
  long f_offset_ = 0;  //!< of F (d x d)
  long p_offset_ = 0;  //!< of P (d x d)
  long a_offset_ = 0;  //!< of A_t (d x d), then h_t (d), B_t (d), hz_t

  int d_ = 0;
  int n_filters_ = 1;
  long filter_stride_ = 0;
  long stride_ = 0;
  double free_[ max_states * max_states ] = {};
  double kappa_[ 2 ] = { 0.0, 0.0 };
  double kappa_pow_[ 2 ][ ( 1L << max_shift ) + 1 ] = {};

  std::deque< std::unique_ptr< double[] > > segments_;
  std::deque< std::unique_ptr< int32_t[] > > readers_;  //!< per held segment and entry: synapses whose window starts there

  /**
   * A window that passed its cutoff while its synapse waits, once its entries are dropped: outputs (total[2],
   * ebar[2], x[d]) = map x inputs (new spike, pending, ebar[2], x[d]), row-major (4 + d) x (4 + d).
   */
  struct Summary
  {
    long readers = 0;
    long end = 0;  //!< a + cutoff
    std::vector< double > map;
  };
  std::unordered_map< long, Summary > summaries_;
  mutable long summaries_used_ = 0;
  //! dropped segments for reuse: no new pages (zeroing fresh pages cost more than the sums themselves)
  std::vector< std::unique_ptr< double[] > > spare_segments_;
  std::vector< std::unique_ptr< int32_t[] > > spare_readers_;
  long first_segment_ = 0;      //!< index of segments_.front()
  long t_first_ = 0;
  long t_end_ = 0;     //!< entries t_first_ .. t_end_ - 1 were appended
  long next_row_ = 0;  //!< first entry whose sums are not complete
};

inline double*
EventProductHistory::entry_( const long t )
{
  return segments_[ ( t >> shift_ ) - first_segment_ ].get() + ( t & mask_ ) * stride_;
}

inline const double*
EventProductHistory::entry_( const long t ) const
{
  return segments_[ ( t >> shift_ ) - first_segment_ ].get() + ( t & mask_ ) * stride_;
}

inline bool
EventProductHistory::held_( const long t ) const
{
  const long s = ( t >> shift_ ) - first_segment_;
  return t >= t_first_ and t < t_end_ and s >= 0 and s < static_cast< long >( segments_.size() );
}

}  // namespace nestgrad

#endif  // NESTGRAD_EVENT_PRODUCT_HISTORY_H
