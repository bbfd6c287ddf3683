/*
 *  eventprop_readout_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_READOUT_PS_H
#define NESTGRAD_EVENTPROP_READOUT_PS_H

#include <cmath>
#include <string>
#include <vector>

#include "eventprop_math.h"
#include "eventprop_node.h"

namespace nestgrad
{

/* BeginUserDocs: neuron, current-based, precise spike timing, EventProp, readout

Short description
+++++++++++++++++

Leaky, non-spiking readout with an exponential synaptic current and exact arrival times, for EventProp

Description
+++++++++++

``eventprop_readout_ps`` is the readout of nestgrad's EventProp in NEST and the NEST twin of the ``li`` population
of the reference engine (python/nestgrad/reference/eventprop). With v = V_m - E_L and the synaptic current I:

.. math::

   \frac{dv}{dt} = -\frac{v}{\tau_m} + \frac{I + I_e}{C_m}, \qquad
   \frac{dI}{dt} = -\frac{I}{\tau_{syn}}, \qquad I \leftarrow I + w \text{ at each arriving spike}

The state is propagated in closed form from arrival to arrival at their exact (off-grid) times. Trials are laid
out as for ``eventprop_iaf_psc_exp_ps``: the state is reset to v = 0, I = 0 at each trial start and spikes
arriving outside a trial are dropped. The readout never spikes.

After each arrival the readout records the trial, the trial-local time and (v, I) (the pieces from which the
losses of docs/eventprop.md take v(t) in closed form): ``seg_trials``, ``seg_times`` (ms), ``seg_v`` (mV,
relative to E_L), ``seg_I`` (pA); with ``record`` = false (default true) nothing is kept (long training runs);
with ``status_records`` = false (default true) the lists are kept but left out of GetStatus (reading ``trial_y``
then costs O(trials), not O(arrivals so far)).

Loss and adjoint (``backward`` = true, docs/eventprop_nest_design.md). With ``readout_index`` = k >= 0 the readout
is output k of a cross-entropy loss L = -log softmax(y)_label (``labels[trial]``) on (``loss``) the mean voltage
y_k = (1/T) int_0^T v_k dt (``sum``), the exponentially weighted mean (1/T) int_0^T exp(-t/tau_w) v_k dt
(``sum_exp``) or the maximum max_t v_k(t) (``max``), as the reference's ``ReadoutCrossEntropy``. In step n_T of
the trial's period it sends y_k (in the offset field) to the other readouts of the loss (over ``eventprop_synapse``
connections between them); in step n_c it computes c_k = dL/dy_k = softmax(y)_k - [k = label] from all values
(summed in ascending order of value, so that the result does not depend on the order of arrival) and sends seven
messages over its reverse connections (``eventprop_reverse_synapse``): c_k, t_max (NaN for the means), the kink
term, the weighting rate (1/tau_w or 0), tau_m, tau_syn, C_m. Its adjoint, forced by the loss, is known in closed
form (kappa as in ``eventprop_iaf_psc_exp_ps``, r = 1/tau_w or 0):

.. math::

   \text{means: } \lambda_v(t) = \frac{c_k}{T} e^{-r t} \int_0^{T-t} e^{-(r + 1/\tau_m) u} du, \quad
   \lambda_I(t) = \frac{c_k}{T C_m} e^{-r t} \int_0^{T-t} e^{-r u} \kappa(u) du

   \text{max: } \lambda_v(t) = c_k e^{-(t_{max} - t)/\tau_m}, \quad
   \lambda_I(t) = \frac{c_k}{C_m} \kappa(t_{max} - t) \quad (t < t_{max}; \text{ else } 0)

The maximum is found piece by piece between arrivals (the piece's start, the zeros of dv/dt inside, the end of
the trial); if it sits on an arrival with dv/dt > 0 just before it, that arrival's J gets the kink term
c_k dv/dt(t_max-). ``eventprop_synapse`` reads lambda_I at its arrivals for the weight gradient. y and c of each
trial are recorded in ``trial_y`` and ``trial_c``.

Response window (``window_start`` = t_w > 0, for decision tasks that score the readouts after their cues): y_k is
taken over [t_w, T] only: max over [t_w, T], or (1/(T - t_w)) int_{t_w}^T (exp(-t/tau_w)) v_k dt. For the means
the forcing is c_k/(T - t_w) exp(-r t) on [t_w, T] and zero before: the formula above with T - t_w in place of
the first T, evaluated at t_w for t < t_w and propagated back from there without forcing. The third message
carries t_w for the means (the kink term only exists for the maximum, where t_max >= t_w already holds all that
the adjoint needs). t_w = 0 (default) is the whole trial, bit for bit.

Parameters
++++++++++

================== ======= =========== ==========================================================================
``C_m``            pF      250.0       membrane capacitance
``tau_m``          ms      10.0        membrane time constant
``tau_syn``        ms      2.0         time constant of the synaptic current
``E_L``            mV      -70.0       resting potential
``I_e``            pA      0.0         constant input current
``trial_origin``   ms      1.0         start of trial 0 (a multiple of the resolution, >= one step)
``trial_duration`` ms      100.0       length T of a trial
``trial_period``   ms      200.0       distance between trial starts (a multiple of the resolution, >= T)
``backward``               false       run the loss exchange and the backward pass in each period
``delay_bound``    ms      1.0         upper bound of every delay (sets the layout of the period)
``readout_index``          -1          index of this readout in the loss (-1: no loss)
``labels``                 []          label of each trial (an index of the loss's readouts)
``loss``                   "sum"       ``sum``, ``sum_exp`` or ``max``
``tau_w``          ms      100.0       weighting time constant of ``sum_exp``
``window_start``   ms      0.0         start t_w of the response window (0 <= t_w < T)
================== ======= =========== ==========================================================================

References
++++++++++

.. [1] Wunderlich TC, Pehle C (2021). Event-based backpropagation can compute exact gradients for spiking neural
       networks. Scientific Reports 11:12829.

Sends
+++++

SpikeEvent (off-grid; payloads of the loss exchange, backward pass only)

Receives
++++++++

SpikeEvent

See also
++++++++

eventprop_iaf_psc_exp_ps, eventprop_synapse

EndUserDocs */

void register_eventprop_readout_ps( const std::string& name );

/**
 * (lambda_v, lambda_I) at t of a readout whose cross-entropy loss is on its mean (rate 0) or exp(-rate t)-weighted
 * mean voltage over the window [t_w, T]: the forcing c / (T - t_w) exp(-rate t) on [t_w, T] integrated in closed
 * form, then, before t_w (no forcing), propagated back from t_w. The readout (forward copy's gradient) and the
 * reverse synapse (J terms, reverse copy's gradient) both call it: the same doubles.
 */
inline void
eventprop_readout_mean_adjoint( const double t,
  const double T,
  const double t_w,
  const double c,
  const double rate,
  const double tau_m,
  const double tau_syn,
  const double C_m,
  double& lv,
  double& li )
{
  const double t_e = t < t_w ? t_w : t;
  const double scale = c / ( T - t_w ) * std::exp( -t_e * rate );
  lv = scale * eventprop_exp_integral( T - t_e, rate + 1.0 / tau_m );
  li = scale * eventprop_kern_integral( T - t_e, tau_m, tau_syn, rate ) / C_m;
  if ( t < t_w )
  {
    const double u = t_w - t;
    li = li * std::exp( -u / tau_syn ) + lv * eventprop_kern( u, tau_m, tau_syn ) / C_m;
    lv = lv * std::exp( -u / tau_m );
  }
}

class eventprop_readout_ps : public EventpropNode
{
public:
  eventprop_readout_ps() = default;
  eventprop_readout_ps( const eventprop_readout_ps& ) = default;

  double adjoint_current_at( double t ) const override;

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

private:
  void update( nest::Time const& origin, long from, long to ) override;
  void start_trial_() override;
  void trial_step_( long lag, long within, const std::vector< EventpropArrival >& arrivals ) override;

  double E_L_ = -70.0;
  EventpropNeuronParams p_;

  double v_ = 0.0;
  double i_ = 0.0;
  double t_upd_ = 0.0;

  // loss (backward pass)
  long readout_index_ = -1;   //!< index among the loss's readouts, -1: not part of a loss
  std::vector< long > labels_;  //!< label of each trial
  bool max_mode_ = false;     //!< loss on the maximum voltage ("max") instead of the mean ("sum")
  double tau_w_ = 100.0;      //!< "sum_exp": weighting time constant (ms)
  double rate_ = 0.0;         //!< 1 / tau_w for "sum_exp", else 0
  double window_start_ = 0.0;  //!< t_w (ms): y is taken over the response window [t_w, T]
  double integral_ = 0.0;     //!< int_0^t v dt of the current trial so far (mV ms)
  // "max": the maximum so far, where, and dv/dt just before it if it sits at an arrival (the kink)
  double best_v_ = 0.0;
  double best_t_ = 0.0;
  double best_left_ = 0.0;
  double prev_end_slope_ = 0.0;
  long n_pieces_ = 0;
  double t_max_ = 0.0;  //!< of the current trial, for the adjoint
  void max_piece_( double length, bool last );
  /**
   * Close a piece of `length` (ms) that starts at t_upd_ in state (v_, i_): record dv/dt at its end (mV/ms) in
   * prev_end_slope_ (a start in the next piece is a kink if it is > 0) and count the piece. Does not change v_, i_.
   */
  void end_piece_( double length );
  void integrate_until_( double t_end );
  double y_ = 0.0;
  double c_ = 0.0;            //!< dL/dy of the current trial
  std::vector< double > others_y_;
  std::vector< long > y_trial_;
  std::vector< double > y_rec_;
  std::vector< double > c_rec_;

  bool record_ = true;          //!< keep the (t, v, I) record (grows with every trial)
  bool status_records_ = true;  //!< false: GetStatus leaves the (growing) records out
  std::vector< long > seg_trial_;
  std::vector< double > seg_t_;
  std::vector< double > seg_v_;
  std::vector< double > seg_i_;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_READOUT_PS_H
