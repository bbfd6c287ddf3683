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
#include <string>
#include <vector>

namespace nestgrad
{

/**
 * Running sums and running products of one neuron for eprop_event_synapse when the eligibility recursion has a
 * coefficient that varies in time (docs/event_driven_eprop.md, "Time-varying coefficients").
 *
 * Between two presynaptic spikes the eligibility vector s (d <= 3 components) of a synapse follows
 *
 *     s[t] = A_t s[t-1],   A_t = J + psi[t] k j^T,     e[t] = psi[t] j . s[t-1],    j = J^T c,
 *
 * the NESTML convention y = J s + b z, e = psi c . y, s = y + k e without input: the spike-triggered increments k
 * (adaptation) pass the dependence on through the surrogate gradient psi, so the map changes every step. The
 * products of these maps do not commute, so the window sums cannot come from sums of geometric sequences; instead
 * the neuron keeps, per step of a segment [R, E) of S steps and per filter f (kappa_f, signal L_f),
 *
 *     forward from R:  F[t] = A_t F[t-1] (F[R-1] = I),   G_f[t] = kappa_f G_f[t-1] + psi[t] j^T F[t-1],
 *                      M_f[t] = sum_{u=R..t} L_f[u] kappa_f^(u-R),   N_f[t] = sum_{u=R..t} L_f[u] G_f[u]
 *     back to E - 1:   P[a] = P[a+1] A_a (P[E] = I),   K_f[a] = kappa_f^(E-1-a) psi[a] j^T + K_f[a+1] A_a,
 *                      Q_f[a] = L_f[a] + kappa_f Q_f[a+1],   W_f[a] = Q_f[a] psi[a] j^T + W_f[a+1] A_a
 *
 * (the backward sums once the segment is complete). A window part [R, b) uses the forward sums of entry b - 1, a part
 * [a, E) the backward sums of entry a; a part inside a segment that is not complete is summed step by step (fewer
 * than S steps). As with the geometric sums, nothing is subtracted: the result is as exact as the step-by-step loop.
 *
 * Memory per step: 1 + n_filters (3 + 4 d) + 2 d^2 doubles (49 for d = 3 and two filters). History is kept from the
 * oldest window start a synapse still waits on, as NEST keeps its per-step history.
 */
class EventProductHistory
{
public:
  static constexpr int max_states = 3;

  EventProductHistory() = default;
  //! Copies of a node (NEST's prototypes) start without history.
  EventProductHistory( const EventProductHistory& );
  EventProductHistory& operator=( const EventProductHistory& ) = delete;

  /**
   * d states; J (d x d, row-major), spike-triggered increments k and j = J^T c; one filter (kappa[0]; signals:
   * learning signal + reg_factor x firing-rate regularisation) or two (kappa[0] for the learning signal, kappa[1]
   * for the firing-rate regularisation).
   */
  void configure( int d, const double* J, const double* k, const double* j, int n_filters, const double* kappa );
  bool
  configured() const
  {
    return d_ > 0;
  }

  //! New entry for step t (entries are contiguous in t); signal of filter 1 (or added to filter 0) is `reg`.
  void append( long t, double psi, double reg, double reg_factor );
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

  //! One step t of the recursion with the spike input z entering: s = (I + psi k c^T)(J x + b z), as the step loop.
  void step( long t, const double* b, const double* c, double z, double* x, double ebar[ 2 ], double total[ 2 ] ) const;

  //! x = J^n x (the free decay beyond the cutoff, as the step-by-step rule).
  void decay( long n, double* x ) const;

  //! A synapse's window start moves from a_old (< 0: none) to a_new.
  void move_reader( long a_old, long a_new );
  //! Drops the segments before t_keep that no window can read.
  void prune( long t_keep );

  long
  entries_held() const
  {
    return static_cast< long >( segments_.size() ) * segment_;
  }

private:
  static constexpr int shift_ = 5;
  static constexpr long segment_ = 1L << shift_;
  static constexpr long mask_ = segment_ - 1;

  double* entry_( long t );
  const double* entry_( long t ) const;
  bool held_( long t ) const;
  void forward_( long t );
  void backward_( long R );
  //! r = r A_t (row vector), x = A_t x (column vector)
  void row_times_a_( double psi, const double* r, double* out ) const;
  void a_times_( double psi, double* x ) const;

  // entry layout offsets
  long filter_offset_( int f ) const
  {
    return 1 + f * filter_stride_;
  }
  // within a filter: L, M, Q, then G[d], N[d], K[d], W[d]
  long f_offset_ = 0;  //!< of F (d x d)
  long p_offset_ = 0;  //!< of P (d x d)

  int d_ = 0;
  int n_filters_ = 1;
  long filter_stride_ = 0;
  long stride_ = 0;
  double J_[ max_states * max_states ] = {};
  double k_[ max_states ] = {};
  double j_[ max_states ] = {};
  double kappa_[ 2 ] = { 0.0, 0.0 };
  double kappa_pow_[ 2 ][ segment_ + 1 ] = {};

  std::deque< std::unique_ptr< double[] > > segments_;
  std::deque< long > readers_;  //!< per held segment: synapses whose window starts in it
  long first_segment_ = 0;      //!< index of segments_.front()
  long t_first_ = 0;
  long t_end_ = 0;     //!< entries t_first_ .. t_end_ - 1 were appended
  long next_row_ = 0;  //!< first entry whose sums are not complete
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENT_PRODUCT_HISTORY_H
