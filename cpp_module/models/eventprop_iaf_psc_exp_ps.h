/*
 *  eventprop_iaf_psc_exp_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_IAF_PSC_EXP_PS_H
#define NESTGRAD_EVENTPROP_IAF_PSC_EXP_PS_H

#include <string>
#include <vector>

#include "eventprop_math.h"
#include "eventprop_spiking_node.h"

namespace nestgrad
{

/* BeginUserDocs: neuron, integrate-and-fire, current-based, precise spike timing, EventProp

Short description
+++++++++++++++++

Leaky integrate-and-fire neuron with an exponential synaptic current, exact spike times, refractoriness and
optional threshold adaptation, for EventProp

Description
+++++++++++

``eventprop_iaf_psc_exp_ps`` is the spiking neuron of nestgrad's EventProp in NEST (docs/eventprop_nest_design.md)
and the NEST twin of the ``lif`` population of the reference engine (python/nestgrad/reference/eventprop). With
v = V_m - E_L, the synaptic current I and the threshold adaptation A:

.. math::

   \frac{dv}{dt} = -\frac{v}{\tau_m} + \frac{I + I_e}{C_m} \quad (\text{not while refractory: } v = V_{reset} - E_L)

   \frac{dI}{dt} = -\frac{I}{\tau_{syn}}, \qquad I \leftarrow I + w \text{ at each arriving spike}

   \frac{dA}{dt} = -\frac{A}{\tau_A}

The neuron spikes at the first time t at which v(t) = V_th - E_L + A(t); then v is set to V_reset - E_L, A
increases by ``adapt_beta`` and v stays clamped for ``t_ref``. The state is propagated in closed form from event
to event (arriving spikes, its own spike, the release from refractoriness) at their exact times, not on NEST's
grid. After every change of state the next threshold crossing is solved exactly (until the end of the trial): the
interval is split where g(u) = v(u) - A(u) - theta is monotone (closed form without adaptation, Rolle recursion on
the exponential sum with adaptation) and the first bracketed root is refined by safeguarded Newton steps to
rounding. This finds excursions above threshold that return below within one time step, which NEST's
``iaf_psc_exp_ps`` (a test at the end of each step) misses. The spike is sent as an off-grid spike with its exact
time.

Trials: the neuron simulates trial k on [trial_origin + k trial_period, ... + trial_duration); at the start of each
trial its state is reset to v = 0, I = 0, A = 0 (not refractory), and spikes arriving outside a trial are dropped.

Each spike is recorded with what EventProp's adjoint needs (docs/eventprop.md): its trial and trial-local time, dg/dt
just before it (g = v - A - theta), dv/dt just after it (0 while refractory) and the free dv/dt at its release from
refractoriness (NaN if the release falls at or after the end of the trial or t_ref = 0).

Backward pass (``backward`` = true; docs/eventprop_nest_design.md, docs/eventprop.md). In the backward window of
each trial's period the neuron sweeps its adjoint (lambda_v, lambda_I, lambda_A) = dL/d(v, I, A) back from the
end of the trial (all zero there), in mirrored time s = T - t, step by step. Between its own events the adjoint
follows, backwards in time,

.. math::

   \lambda_v(t - u) = e^{-u/\tau_m} \lambda_v(t), \quad
   \lambda_I(t - u) = e^{-u/\tau_{syn}} \lambda_I(t) + \frac{\kappa(u)}{C_m} \lambda_v(t), \quad
   \lambda_A(t - u) = e^{-u/\tau_A} \lambda_A(t)

(kappa as for v forward). At the release r_k of spike k: R_k = -lambda_v(r_k) dv/dt_free(r_k), then lambda_v = 0.
At spike k: B = -lambda_v dv/dt^+ + lambda_A beta / tau_A + J_k + R_k, lambda_v <- -B / gdot_k,
lambda_A <- lambda_A + B / gdot_k, where J_k = sum over the spike's arrivals at targets m of
w (lambda_I,m / tau_syn,m - lambda_v,m / C_m,m), added before the sweep reaches the spike by the reverse
connections (``eventprop_reverse_synapse``) from the targets. At each spike it sends a replay (offset: the spike's
forward time) through which its outgoing ``eventprop_synapse`` connections read their target's lambda_I at the
arrival (dL/dw = sum over arrivals of lambda_I). The adjoint just before each event is kept for the trial, so that
lambda_I at any time is one closed-form propagation from the entry that follows it.

Spiking targets m (recurrent and multi-layer networks) enter J through accumulators: for each group of targets
with equal (tau_m, tau_syn, C_m) the neuron keeps S = sum_m w (lambda_v,m, lambda_I,m)(t + d), which follows the
same backward dynamics as one neuron's adjoint between the targets' jumps; each jump of a target's lambda_v (at its
spikes and releases) reaches the neuron as a push w Delta lambda_v from the reverse connection's mirror of m,
applied when the sweep passes t_e - d. At spike k, J_k adds S_I / tau_syn - S_v / C_m of every group. In the
message phase of the period (step n_c) the neuron sends its constants (0, NaN, 0, v, tau_m, tau_syn, C_m) to the
mirrors (v: the verdict of ``max_trial_gradient`` on the previous trial, 0 or -1);
in the backward sweep it sends, at each spike, its forward time and then lambda_v just before the spike, and at
each release the negative release time.

Losses on spike times (docs/eventprop.md, "Losses"). A loss that depends on the spike times t_k adds its
derivative to B at each spike: B = ... + J_k + R_k + dL/dt_k, exactly as the reference's adjoint.py does with
``LossTerms.spike_time_grad``. Two such losses are computed inside the neuron:

* First-spike loss (Göltz et al. 2021), with ``output_index`` = k >= 0: the neuron is output k of the loss
  L = -log softmax(z)_label + alpha (exp(t_label / (beta tau_s)) - 1), z_j = -t_j / (xi tau_s), t_j the first spike
  time of output j in the trial (T if it does not spike), label = ``labels[trial]``. In step n_T of the period the
  neuron sends t_k to the other outputs (``eventprop_exchange_synapse``, port 1; the readouts' y exchange), and in
  step n_c it computes, from all t_j summed in ascending order of z,

  .. math::

     \frac{\partial L}{\partial t_k} = -\frac{\mathrm{softmax}(z)_k - [k = \mathrm{label}]}{\xi \tau_s}
       + [k = \mathrm{label}] \frac{\alpha}{\beta \tau_s} e^{t_k / (\beta \tau_s)}

  for its first spike; without a spike t_k = T is a constant and there is no term. ``trial_t_first`` records t_k per
  trial (+inf without a spike).
* Spike-count regulariser, with ``spike_count_rho`` = rho > 0: L = rho/2 (s - nu)^2 with s = sum_k (1 - t_k / T)
  over the neuron's spikes of the trial, so that dL/dt_k = -rho (s - nu) / T for every spike; ``trial_spike_score``
  records s per trial.

Parameters
++++++++++

================== ======= =========== ==========================================================================
``C_m``            pF      250.0       membrane capacitance
``tau_m``          ms      10.0        membrane time constant
``tau_syn``        ms      2.0         time constant of the synaptic current
``E_L``            mV      -70.0       resting potential
``I_e``            pA      0.0         constant input current
``V_th``           mV      -55.0       threshold (without adaptation)
``V_reset``        mV      -70.0       reset potential, < V_th
``t_ref``          ms      2.0         refractory period, >= 0
``adapt_tau``      ms      100.0       time constant of the threshold adaptation
``adapt_beta``     mV      0.0         increase of the threshold at each spike, >= 0 (0: no adaptation)
``trial_origin``   ms      1.0         start of trial 0 (a multiple of the resolution, >= one step)
``trial_duration`` ms      100.0       length T of a trial
``trial_period``   ms      200.0       distance between trial starts (a multiple of the resolution, >= T)
``backward``               false       run the backward pass in each period (see eventprop_readout_ps)
``delay_bound``    ms      1.0         upper bound of every delay (sets the layout of the period)
================== ======= =========== ==========================================================================

Loss parameters (backward pass only):

======================== ===== =========== ====================================================================
``output_index``                 -1          index of this neuron among the outputs of a first-spike loss (-1: none)
``labels``                       []          label of each trial (an output index), for the first-spike loss
``first_spike_xi``               0.2         xi of the first-spike loss, > 0
``first_spike_alpha``            0.005       alpha (weight of the label's spike-time term), >= 0
``first_spike_beta``             1.0         beta, > 0
``first_spike_tau_s``    ms      NaN         tau_s, > 0 (NaN: the neuron's tau_syn)
``spike_count_rho``              0.0         rho of the spike-count regulariser, >= 0 (0: off)
``spike_count_nu``               1.0         target score nu of the spike-count regulariser
``max_trial_gradient``   1/pA    inf         per-trial gradient clipping (below), > 0 (inf: off)
======================== ===== =========== ====================================================================

Per-trial gradient clipping (Göltz et al. 2021, their ``max_dw_norm``). Near a grazing threshold crossing (the
membrane just reaches threshold) dt_k/dw diverges, and one trial can dominate a batch's gradient. With
``max_trial_gradient`` = c, the largest magnitude of the trial's gradient dL/dw over the neuron's incoming
``eventprop_synapse`` weights is compared with c after the trial's backward pass; if it exceeds c, that trial adds
nothing to the batch gradient of any incoming weight of this neuron (other trials and other neurons are unaffected;
the adjoint sent on to earlier layers is not changed). Each incoming synapse reports its trial's gradient when its
source's backward sweep ends; the neuron sends the verdict to the reverse copies in the next step n_c (the fourth
constant: -1 dropped, 0 kept), so both copies of an edge still apply the same step. ``gradient`` of the synapses
keeps the unclipped sum. Göltz et al. clip at 0.2 on the per-sample gradient of a batch-mean loss with batches of
150, i.e. c = 30 on one trial's gradient in their units.

Per trial (one entry per trial period simulated, kept also with ``record`` = false): ``trial_t_first`` (ms,
trial-local; outputs of a first-spike loss), ``trial_spike_score`` (neurons with ``spike_count_rho`` > 0).

Recorded with ``record`` = true (the default; read-only lists, one entry per spike since the network was built):
``spike_trials``, ``spike_times`` (ms, trial-local), ``spike_gdot`` (mV/ms), ``spike_vdot_plus`` (mV/ms),
``release_vdot`` (mV/ms). These lists grow with every trial: set ``record`` = false for long training runs (the
backward pass keeps its own per-trial copy), or ``status_records`` = false (default true) to keep recording but
leave the lists out of GetStatus, so that reading any other entry costs O(1) instead of O(spikes so far).
``n_spikes`` (read-only): forward spikes since the network was built, recorded or not; ``n_spiking_trials``
(read-only): trials in which the neuron spiked at least once (Göltz et al.'s weight bumping counts the silent ones).
``V_m``, ``I_syn`` and ``adaptation`` give the state at the last event processed.

References
++++++++++

.. [1] Wunderlich TC, Pehle C (2021). Event-based backpropagation can compute exact gradients for spiking neural
       networks. Scientific Reports 11:12829.
.. [2] Hanuschkin A, Kunkel S, Helias M, Morrison A, Diesmann M (2010). A general and efficient method for
       incorporating precise spike times in globally time-driven simulations. Frontiers in Neuroinformatics 4:113.

Sends
+++++

SpikeEvent (off-grid)

Receives
++++++++

SpikeEvent

See also
++++++++

eventprop_readout_ps, eventprop_input_ps, eventprop_synapse, eventprop_exchange_synapse, iaf_psc_exp_ps

EndUserDocs */

void register_eventprop_iaf_psc_exp_ps( const std::string& name );

class eventprop_iaf_psc_exp_ps : public EventpropSpikingNode
{
public:
  eventprop_iaf_psc_exp_ps();
  eventprop_iaf_psc_exp_ps( const eventprop_iaf_psc_exp_ps& ) = default;

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

  double adjoint_current_at( double t ) const override;

private:
  void pre_run_hook() override;

  // hooks of EventpropSpikingNode: the dynamics of (v, I, A) and of the adjoint (lambda_v, lambda_I, lambda_A)
  void reset_trial_state_() override;
  void propagate_state_( double u ) override;
  double first_crossing_( double horizon ) const override;
  double threshold_slope_() const override;
  double voltage_slope_() const override;
  double refractory_period_() const override;
  void reset_at_spike_() override;
  void apply_arrival_( const EventpropArrival& a ) override;
  void send_mirror_constants_( long lag ) override;
  double default_first_spike_tau_s_() const override;
  void start_adjoint_() override;
  double adjoint_event_( double t, bool release, size_t k ) override;
  //! the targets of this neuron have exponential currents (a GLIF3 target's push is refused)
  bool alpha_targets_() const override;

  double E_L_ = -70.0;
  EventpropNeuronParams p_;
  double kmax_ = 0.0;

  // state, trial-local times
  double v_ = 0.0;
  double i_ = 0.0;
  double a_ = 0.0;

  //! adjoint just before (in forward time) each of the neuron's events of the current trial, in the order of the
  //! backward sweep (descending t); entry 0 is (T, 0, 0, 0)
  struct AdjointEntry
  {
    double t;
    double lv;
    double li;
    double la;
  };
  std::vector< AdjointEntry > adj_;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_IAF_PSC_EXP_PS_H
