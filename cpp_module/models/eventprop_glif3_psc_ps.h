/*
 *  eventprop_glif3_psc_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_GLIF3_PSC_PS_H
#define NESTGRAD_EVENTPROP_GLIF3_PSC_PS_H

#include <string>
#include <vector>

#include "eventprop_glif3_math.h"
#include "eventprop_spiking_node.h"

namespace nestgrad
{

/* BeginUserDocs: neuron, integrate-and-fire, current-based, precise spike timing, EventProp

Short description
+++++++++++++++++

GLIF3 neuron (glif_psc with after-spike currents) with alpha-shaped synaptic currents per receptor port, exact
spike times and the EventProp adjoint

Description
+++++++++++

``eventprop_glif3_psc_ps`` is the NEST twin of the ``glif3`` population of nestgrad's EventProp reference engine
(python/nestgrad/reference/eventprop/neurons/glif3.py, docs/eventprop_glif3.md): the dynamics of NEST's
``glif_psc`` in its GLIF3 setting (after-spike currents on, threshold mechanisms off), integrated in closed form
from event to event at exact times. With v = V_m - E_L, the after-spike currents A_j and per receptor port r an
alpha-shaped current I_r with its auxiliary state x_r:

.. math::

   \frac{dv}{dt} = -\frac{v}{\tau_m} + \frac{I_e + \sum_j A_j + \sum_r I_r}{C_m}, \quad \tau_m = C_m / g

   \frac{dA_j}{dt} = -k_j A_j \quad (k_j = \text{asc\_decay}_j)

   \frac{dI_r}{dt} = -\frac{I_r}{\tau_r} + x_r, \quad \frac{dx_r}{dt} = -\frac{x_r}{\tau_r}, \quad
   x_r \leftarrow x_r + \frac{w e}{\tau_r} \text{ at each arrival of weight } w \text{ on port } r

so that one arrival gives I_r(u) = w e u / tau_r exp(-u / tau_r), peaking at w after tau_r ms. v and A_j are frozen
while the neuron is refractory; the synaptic states always evolve and take arrivals. The neuron spikes when v
reaches V_th - E_L; then v = V_reset - E_L, A_j = asc_amps_j + rho_j A_j with rho_j = asc_r_j exp(-k_j t_ref)
(glif_psc decays A_j over the refractory period), and v, A_j stay frozen for ``t_ref`` ms. After every change of
state the next threshold crossing is solved exactly over the next 1 ms past the current step (the search goes on,
1 ms at a time, while no input arrives; any arrival starts a new search, so nothing is missed): a bound on v rules
most intervals out; otherwise the zeros of dv/dt split the interval into monotone pieces (Rolle recursion on the
exponential sum) and the first bracketed root is refined by safeguarded Newton steps to rounding. The short horizon
keeps the bound tight, so the costly exact search runs only for neurons near threshold (searching to the end of the
trial after every arrival made the forward pass of the V1 column 4-5x slower). Unlike ``glif_psc`` (a test at
the end of each step), a crossing inside a step is found and sent as an off-grid spike with its exact time.

Receptor ports are numbered 1..len(tau_syn), as ``receptor_type`` of ``glif_psc``; forward connections
(``eventprop_synapse``) on port 0 are refused (port 0 is for the reverse connections of the backward pass).

Trials, backward pass and records as for ``eventprop_iaf_psc_exp_ps`` (docs/eventprop_nest_design.md): at the start
of each trial v = 0, A_j = asc_init_j, no synaptic current, not refractory. In the backward window of each period
the neuron sweeps its adjoint lambda = dL/d(v, A_j, x_r, I_r) back from the end of the trial (reference
glif3.adjoint_propagate between its events). At the release r_k of spike k: R_k = -lambda_v dv/dt_free(r_k) +
sum_j lambda_A_j k_j A_j(r_k), then lambda_v = 0. At spike k, with A_j^- before it:

.. math::

   B = J_k + R_k + \frac{\partial L}{\partial t_k} - \lambda_v \dot v^+
       + \sum_j \lambda_{A_j} \left(-\rho_j k_j A_j^- - \dot A_j^+\right), \quad
   \lambda_v \leftarrow -B / \dot v^-, \quad \lambda_{A_j} \leftarrow \rho_j \lambda_{A_j}

(dv/dt^+ = dA_j/dt^+ = 0 with t_ref > 0). J_k sums over the spike's arrivals at its targets: a readout adds
w (lambda_I / tau_syn - lambda_v / C_m) (pushed by ``eventprop_reverse_synapse``), a GLIF3 target on port r adds
w e / tau_r (lambda_x,r / tau_r - lambda_I,r), through accumulators per group of targets with equal (tau_m, tau_r,
C_m) into which the reverse connections push the targets' jumps of lambda_v. The weight gradient of an arrival on
port r is dL/dw = lambda_x,r(t_a) e / tau_r (``weight_gradient_at``, read by ``eventprop_synapse``). In step n_c
the neuron sends its constants (0, NaN, 0, 0, tau_m, -R, C_m, tau_1, ..., tau_R) to the reverse connections'
mirrors; in the sweep, at each spike its forward time and lambda_v just before it, at each release the negative
release time.

Losses on spike times, as ``eventprop_iaf_psc_exp_ps`` computes them (its documentation gives the formulas): the
first-spike loss (Göltz et al. 2021) with ``output_index`` >= 0 (``labels``, ``first_spike_xi``, ``_alpha``,
``_beta`` and ``first_spike_tau_s``, which a GLIF3 output must be given: it has no single tau_syn), the outputs
exchanging their first spike times over ``eventprop_exchange_synapse`` (delivered on port 0, which forward
connections cannot use); and the spike-count regulariser (``spike_count_rho`` > 0, ``spike_count_nu``).

Parameters
++++++++++

======================== ====== ================= =====================================================================
``C_m``                  pF     58.72             membrane capacitance
``g``                    nS     9.43              membrane conductance (tau_m = C_m / g)
``E_L``                  mV     -78.85            resting potential
``V_th``                 mV     -51.68            threshold
``V_reset``              mV     -78.85            reset potential, < V_th
``t_ref``                ms     3.75              refractory period, >= 0
``I_e``                  pA     0.0               constant input current
``asc_init``             pA     [0.0, 0.0]        after-spike currents at the start of each trial
``asc_decay``            1/ms   [0.003, 0.1]      decay rates k_j, > 0
``asc_amps``             pA     [-9.18, -198.94]  increase of A_j at each spike
``asc_r``                       [1.0, 1.0]        share of A_j kept at a spike (times exp(-k_j t_ref))
``tau_syn``              ms     [2.0]             time constant of each receptor port's alpha current, > 0
``trial_origin``         ms     1.0               start of trial 0 (a multiple of the resolution, >= one step)
``trial_duration``       ms     100.0             length T of a trial
``trial_period``         ms     200.0             distance between trial starts (a multiple of the resolution, >= T)
``backward``                    false             run the backward pass in each period
``delay_bound``          ms     1.0               upper bound of every delay (sets the layout of the period)
``spike_count_rho``             0.0               rho of the spike-count regulariser, >= 0 (0: off)
``spike_count_nu``              1.0               target score nu of the spike-count regulariser
``output_index``                -1                index among the outputs of a first-spike loss (-1: none)
``labels``                      []                label of each trial (an output index), for the first-spike loss
``first_spike_xi``              0.2               xi of the first-spike loss, > 0
``first_spike_alpha``           0.005             alpha (weight of the label's spike-time term), >= 0
``first_spike_beta``            1.0               beta, > 0
``first_spike_tau_s``    ms     NaN               tau_s, > 0 (required with output_index >= 0)
======================== ====== ================= =====================================================================

asc_init, asc_decay, asc_amps and asc_r have one entry per after-spike current (any number, the same for all
four); the number of receptor ports cannot shrink once the neuron has incoming connections.

Recorded with ``record`` = true (the default; one entry per spike since the network was built): ``spike_trials``,
``spike_times`` (ms, trial-local), ``spike_gdot`` (dv/dt before the spike, mV/ms), ``spike_vdot_plus`` (after it,
0 while refractory), ``release_vdot`` (free dv/dt at the release, NaN without a release in the trial);
``status_records`` = false leaves them out of GetStatus. ``n_spikes``, ``n_spiking_trials``, ``trial_t_first`` and
``trial_spike_score`` as for ``eventprop_iaf_psc_exp_ps``. ``V_m``, ``ASCurrents`` and ``I_syn`` (one per port) give
the state at the last event processed.

References
++++++++++

.. [1] Teeter C, Iyer R, Menon V, et al. (2018). Generalized leaky integrate-and-fire models classify multiple
       neuron types. Nature Communications 9:709.
.. [2] Wunderlich TC, Pehle C (2021). Event-based backpropagation can compute exact gradients for spiking neural
       networks. Scientific Reports 11:12829.
.. [3] Hanuschkin A, Kunkel S, Helias M, Morrison A, Diesmann M (2010). A general and efficient method for
       incorporating precise spike times in globally time-driven simulations. Frontiers in Neuroinformatics 4:113.

Sends
+++++

SpikeEvent (off-grid)

Receives
++++++++

SpikeEvent (receptor ports 1..len(tau_syn))

See also
++++++++

glif_psc, eventprop_iaf_psc_exp_ps, eventprop_readout_ps, eventprop_synapse, eventprop_reverse_synapse

EndUserDocs */

void register_eventprop_glif3_psc_ps( const std::string& name );

class eventprop_glif3_psc_ps : public EventpropSpikingNode
{
public:
  eventprop_glif3_psc_ps();
  eventprop_glif3_psc_ps( const eventprop_glif3_psc_ps& ) = default;

  using EventpropNode::handles_test_event;
  size_t handles_test_event( nest::SpikeEvent&, size_t receptor_type ) override;
  void check_forward_port( size_t receptor_type ) const override;

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

  double adjoint_current_at( double t ) const override;
  double weight_gradient_at( double t, long rport ) const override;

  //! port 0: the receptor ports 1..R belong to the forward connections
  long
  exchange_port() const override
  {
    return 0;
  }

private:
  // hooks of EventpropSpikingNode: the dynamics of (v, A_j, x_r, I_r) and of its adjoint
  void reset_trial_state_() override;
  void propagate_state_( double u ) override;
  double first_crossing_( double horizon ) const override;
  bool
  searches_lazily_() const override
  {
    return true;
  }
  double first_crossing_between_( double u0, double u1 ) const override;
  double threshold_slope_() const override;
  double voltage_slope_() const override;
  double refractory_period_() const override;
  void reset_at_spike_() override;
  void note_release_() override;
  //! forward spikes arrive on the ports 1..R (port 0: messages of the backward pass' connections)
  bool takes_arrival_( const EventpropArrival& a ) const override;
  void apply_arrival_( const EventpropArrival& a ) override;
  void send_mirror_constants_( long lag ) override;
  //! NaN: a GLIF3 output of a first-spike loss needs first_spike_tau_s (it has no single tau_syn)
  double default_first_spike_tau_s_() const override;
  void start_adjoint_() override;
  double adjoint_event_( double t, bool release, size_t k ) override;
  //! the spiking targets of this neuron are GLIF3 neurons (alpha-shaped currents)
  bool alpha_targets_() const override;

  double E_L_ = -78.85;
  EventpropGlif3Params p_;
  std::vector< double > asc_init_ { 0.0, 0.0 };
  bool has_connections_ = false;  //!< a forward connection exists: the number of ports cannot shrink

  // state, trial-local times
  std::vector< double > s_;  //!< (v, A_j, x_r, I_r)
  mutable std::vector< double > s_later_;  //!< scratch: the free state some time ahead (first_crossing_between_)

  //! the after-spike currents at each spike of the current trial (tspk_ has the rest)
  struct SpikeAsc
  {
    std::vector< double > a_minus;  //!< A_j just before the spike
    std::vector< double > a_plus;   //!< A_j just after it
    std::vector< double > release;  //!< A_j at the release
  };
  std::vector< SpikeAsc > asc_spk_;

  //! adjoint just before (in forward time) each of the neuron's events of the current trial, in the order of the
  //! backward sweep (descending t); entry 0 is (T, 0). Stored flat, because the forward connections look entries up
  //! at every replay of a source (a binary search over adj_t_, then one read of adj_lam_): entry i is at time
  //! adj_t_[ i ], its lambda is adj_lam_[ i * p_.size() ... ], adj_refr_[ i ]: refractory on the interval before it
  std::vector< double > adj_t_;
  std::vector< char > adj_refr_;
  std::vector< double > adj_lam_;
  std::vector< double > lam_;  //!< scratch: the entry being computed
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_GLIF3_PSC_PS_H
