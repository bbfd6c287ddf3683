/*
 *  eprop_iaf_psc_exp.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_IAF_PSC_EXP_H
#define NESTGRAD_EPROP_IAF_PSC_EXP_H

// NEST public headers
#include "connection.h"
#include "eprop_archiving_node_impl.h"
#include "eprop_archiving_node_recurrent.h"
#include "eprop_synapse.h"
#include "event.h"
#include "nest_types.h"
#include "ring_buffer.h"
#include "universal_data_logger.h"

#include "eprop_event_node.h"
#include "eprop_parameter_checks.h"

#include <deque>
#include <vector>

namespace nestgrad
{

/* BeginUserDocs: neuron, e-prop plasticity, current-based, integrate-and-fire, exponential synaptic currents

Short description
+++++++++++++++++

Leaky integrate-and-fire neuron with exponentially decaying postsynaptic currents, trainable with e-prop

Description
+++++++++++

``eprop_iaf_psc_exp`` is a recurrent e-prop neuron: the subthreshold dynamics of NEST's ``iaf_psc_exp``
(separate excitatory and inhibitory synaptic time constants, exact integration), with the e-prop interface of
NEST 3.10 so that it learns through ``eprop_synapse``, receives learning signals through
``eprop_learning_signal_connection`` from ``eprop_readout`` neurons, and is regularised towards a target rate.

Dynamics, with :math:`v` measured relative to :math:`E_\text{L}`, time step :math:`\Delta t` and step index
:math:`t`:

.. math::

  v^t &= P_{22} v^{t-1} + P_{21}^\text{ex} I_\text{ex}^{t-1} + P_{21}^\text{in} I_\text{in}^{t-1}
        + P_{20} \left( I_\text{e} + I_\text{stim}^{t-1} \right) \,,\\
  I_\text{x}^t &= P_{11}^\text{x} I_\text{x}^{t-1} + \sum_i W_{ji} z_i^{t-d} \quad (x = \text{ex if } W_{ji} \ge 0,
        \text{ else in}) \,,\\
  P_{22} &= e^{-\Delta t/\tau_\text{m}}, \quad P_{11}^\text{x} = e^{-\Delta t/\tau_\text{syn,x}}, \quad
  P_{20} = \frac{\tau_\text{m}}{C_\text{m}} \left( 1 - P_{22} \right) ,\\
  P_{21}^\text{x} &= \frac{\tau_\text{syn,x} \tau_\text{m}}{C_\text{m} (\tau_\text{m} - \tau_\text{syn,x})}
        \left( e^{-\Delta t/\tau_\text{m}} - e^{-\Delta t/\tau_\text{syn,x}} \right)
        \quad (\Delta t/C_\text{m}\, P_{22} \text{ if } \tau_\text{syn,x} = \tau_\text{m}) \,.

If :math:`v^t \ge v_\text{th}` and the neuron is not refractory, it spikes (:math:`z_j^t = 1`), :math:`v` is set to
:math:`v_\text{reset}` and held there for :math:`t_\text{ref}`; the synaptic currents keep evolving. A spike
arriving during the refractory period still enters the synaptic current. :math:`v` is bounded below by
:math:`v_\text{min}`.

E-prop. The eligibility vector of a synapse :math:`i \to j` follows the neuron's own hidden-state Jacobian with
respect to the weight, ignoring the reset (the usual e-prop convention for LIF neurons):

.. math::

  \epsilon_{I,ji}^t &= P_{11}^\text{x} \epsilon_{I,ji}^{t-1} + z_i^{t-d} \,,\\
  \epsilon_{v,ji}^t &= P_{22} \epsilon_{v,ji}^{t-1} + P_{21}^\text{x} \epsilon_{I,ji}^{t-1} \,,\\
  e_{ji}^t &= \psi_j^t \, \epsilon_{v,ji}^t \,,\\
  \bar e_{ji}^t &= \kappa \bar e_{ji}^{t-1} + e_{ji}^t \,, \qquad
  \bar e_{\text{reg},ji}^t = \kappa_\text{reg} \bar e_{\text{reg},ji}^{t-1} + (1 - \kappa_\text{reg}) e_{ji}^t \,,\\
  g_{ji} &= \sum_t L_j^t \bar e_{ji}^t + c_\text{reg} \left( f_j^{\text{ema},t} - f^\text{target} \Delta t \right)
         \bar e_{\text{reg},ji}^t \,,\\
  f_j^{\text{ema},t} &= \kappa_\text{reg} f_j^{\text{ema},t-1} + (1 - \kappa_\text{reg}) z_j^t / \Delta t \,.

The filter :math:`x` (ex or in) of the eligibility vector is chosen by the sign of the weight with which the
previous presynaptic spike was delivered, as the synaptic current itself. :math:`\bar e` is filtered exactly as
written (without a factor :math:`1 - \kappa`, like NEST's ``eprop_iaf``). :math:`\psi_j^t` is the surrogate gradient
evaluated on :math:`v^t` (zero while refractory). As in NEST's e-prop models, the gradient of a synapse is computed
event-driven when the next presynaptic spike passes it, over the steps between the two spikes up to the cutoff
``eprop_isi_trace_cutoff``; the traces are propagated in closed form across the rest of the interval, and the
weight is then changed by the synapse's optimizer.

Two synapse models compute this gradient: NEST's ``eprop_synapse`` loops over the steps of the window (O(window)
per spike and synapse); nestgrad's ``eprop_event_synapse`` takes it from running sums the neuron keeps once per step
(one entry per 32-step segment the window crosses; docs/event_driven_eprop.md). Both give the same weight updates
(to ~1e-14 relative) and can be mixed on one neuron; each keeps its own history only
when connected.

The surrogate gradient functions are NEST's, as its code computes them (with :math:`\gamma` the height,
:math:`w` the width and :math:`v_\text{th}` relative to :math:`E_\text{L}`): ``piecewise_linear``
:math:`\gamma \max(0, 1 - |v - v_\text{th}| / w)`, ``exponential`` :math:`\gamma e^{-|v - v_\text{th}| / w}`,
``fast_sigmoid_derivative`` :math:`\gamma (1 + |v - v_\text{th}| / w)^{-2}` and ``arctan_derivative``
:math:`\gamma / (1 + ((v - v_\text{th}) / w)^2)`; all are zero while the neuron is refractory.

Parameters
++++++++++

=============================== ======= =========================== ================== ===========================
**Neuron parameters**
------------------------------------------------------------------------------------------------------------------
Parameter                       Unit    Math equivalent             Default            Description
=============================== ======= =========================== ================== ===========================
``C_m``                         pF      :math:`C_\text{m}`          250.0              Membrane capacitance (> 0)
``E_L``                         mV      :math:`E_\text{L}`          -70.0              Leak / resting potential
``I_e``                         pA      :math:`I_\text{e}`          0.0                Constant external current
``t_ref``                       ms      :math:`t_\text{ref}`        2.0                Refractory period (>= 0)
``tau_m``                       ms      :math:`\tau_\text{m}`       10.0               Membrane time constant (> 0)
``tau_syn_ex``                  ms      :math:`\tau_\text{syn,ex}`  2.0                Excitatory synaptic time
                                                                                       constant (> 0)
``tau_syn_in``                  ms      :math:`\tau_\text{syn,in}`  2.0                Inhibitory synaptic time
                                                                                       constant (> 0)
``V_th``                        mV      :math:`v_\text{th}`         -55.0              Spike threshold (> V_reset)
``V_reset``                     mV      :math:`v_\text{reset}`      -70.0              Reset potential
``V_min``                       mV      :math:`v_\text{min}`        -1.797e308         Lower bound of V_m
=============================== ======= =========================== ================== ===========================

=============================== ======= =========================== ================== ===========================
**E-prop parameters**
------------------------------------------------------------------------------------------------------------------
Parameter                       Unit    Math equivalent             Default            Description
=============================== ======= =========================== ================== ===========================
``c_reg``                               :math:`c_\text{reg}`        0.0                Firing-rate regularisation
                                                                                       coefficient (>= 0)
``f_target``                    Hz      :math:`f^\text{target}`     10.0               Target firing rate (>= 0)
``kappa``                               :math:`\kappa`              0.97               Eligibility-trace filter
                                                                                       ([0, 1])
``kappa_reg``                           :math:`\kappa_\text{reg}`   0.97               Firing-rate filter ([0, 1])
``surrogate_gradient_function``         :math:`\psi`                "piecewise_linear" One of piecewise_linear,
                                                                                       exponential,
                                                                                       fast_sigmoid_derivative,
                                                                                       arctan_derivative
``surrogate_gradient_height``           :math:`\gamma`              0.3                Height (> 0)
``surrogate_gradient_width``            :math:`w`                   1.0                Width (> 0)
``eprop_isi_trace_cutoff``      ms      :math:`\Delta t_\text{c}`   inf                Gradient window after each
                                                                                       presynaptic spike (>= 0)
``flush_event_send_interval``   ms                                  inf                Inactivity after which a
                                                                                       flush event is sent
=============================== ======= =========================== ================== ===========================

Recordables
+++++++++++

``V_m`` (mV), ``I_syn_ex`` (pA), ``I_syn_in`` (pA), ``surrogate_gradient``, ``learning_signal`` (pA),
``eprop_history_duration`` (ms, history of ``eprop_synapse``), ``event_history_size`` (entries held for
``eprop_event_synapse``).

Usage
+++++

Use it as NEST's ``eprop_iaf``: input and recurrent connections with ``eprop_synapse`` or ``eprop_event_synapse``
(delay one step),
connections to ``eprop_readout`` neurons with ``eprop_synapse``, learning signals back with
``eprop_learning_signal_connection``. ``nestgrad.networks.eprop_classic`` builds such networks.

References
++++++++++

.. [1] Bellec G, Scherr F, Subramoney A, Hajek E, Salaj D, Legenstein R, Maass W (2020). A solution to the
       learning dilemma for recurrent networks of spiking neurons. Nature Communications 11:3625.
       https://doi.org/10.1038/s41467-020-17236-y
.. [2] Rotter S, Diesmann M (1999). Exact digital simulation of time-invariant linear systems with applications
       to neuronal modeling. Biological Cybernetics 81:381-402. https://doi.org/10.1007/s004220050570
.. [3] Korcsak-Gorzo A, Espinoza Valverde JA, Stapmanns J, Plesser HE, Dahmen D, Bolten M, van Albada SJ,
       Diesmann M (2025). Event-driven eligibility propagation in large sparse networks: efficiency shaped by
       biological realism. arXiv:2511.21674.

Sends
+++++

SpikeEvent

Receives
++++++++

SpikeEvent, CurrentEvent, LearningSignalConnectionEvent, DataLoggingRequest

See also
++++++++

eprop_iaf, iaf_psc_exp, eprop_synapse, eprop_event_synapse, eprop_readout, eprop_learning_signal_connection

EndUserDocs */

void register_eprop_iaf_psc_exp( const std::string& name );

/**
 * Propagator from a synaptic current to the membrane potential over a time h, for exponential currents with time
 * constant tau_syn and a membrane with time constant tau_m and capacitance c_m. Stable for tau_syn near tau_m.
 */
double psc_exp_current_to_voltage_propagator( double tau_syn, double tau_m, double c_m, double h );

class eprop_iaf_psc_exp : public EpropEventNode
{
public:
  eprop_iaf_psc_exp();
  eprop_iaf_psc_exp( const eprop_iaf_psc_exp& );

  using nest::Node::handle;
  using nest::Node::handles_test_event;
  using EpropEventNode::handle;  // learning signals
  using EpropEventNode::handles_test_event;

  size_t send_test_event( nest::Node&, size_t, nest::synindex, bool ) override;

  void handle( nest::SpikeEvent& ) override;
  void handle( nest::CurrentEvent& ) override;
  void handle( nest::DataLoggingRequest& ) override;

  size_t handles_test_event( nest::SpikeEvent&, size_t ) override;
  size_t handles_test_event( nest::CurrentEvent&, size_t ) override;
  size_t handles_test_event( nest::DataLoggingRequest&, size_t ) override;

  void get_status( Dictionary& ) const override;
  void set_status( const Dictionary& ) override;

private:
  void init_buffers_() override;
  void pre_run_hook() override;
  void update( nest::Time const&, const long, const long ) override;

  void compute_gradient( const long t_spike,
    const long t_spike_previous,
    double& z_previous_buffer,
    double& eps_v,
    double& e_bar,
    double& e_bar_reg,
    double& eps_i,
    double& weight,
    const nest::CommonSynapseProperties& cp,
    nest::WeightOptimizer* optimizer,
    const bool is_flush_event,
    const bool previous_was_flush_event,
    double& gradient,
    long& remaining_steps_until_cutoff,
    long& decay_steps ) override;

  double event_gradient( long t_spike,
    long t_spike_previous,
    double weight,
    size_t rport,
    EventEpropTrace& trace ) override;

  friend class nest::RecordablesMap< eprop_iaf_psc_exp >;
  friend class nest::UniversalDataLogger< eprop_iaf_psc_exp >;

  //! Parameters in user units; voltages are stored relative to E_L. The e-prop ones are EpropParameters'.
  struct Parameters_ : EpropParameters
  {
    double C_m_;        //!< pF
    double E_L_;        //!< mV
    double I_e_;        //!< pA
    double t_ref_;      //!< ms
    double tau_m_;      //!< ms
    double tau_syn_ex_; //!< ms
    double tau_syn_in_; //!< ms
    double V_min_;      //!< mV, relative to E_L
    double V_reset_;    //!< mV, relative to E_L
    double V_th_;       //!< mV, relative to E_L

    Parameters_();
    void get( Dictionary& ) const;
    //! Sets, validates and returns the change of E_L.
    double set( const Dictionary&, nest::Node* );
  };

  struct State_
  {
    double learning_signal_;
    long r_;  //!< remaining refractory steps
    double surrogate_gradient_;
    double i_stim_;  //!< pA, current input received in the previous step
    double i_syn_ex_;
    double i_syn_in_;
    double v_m_;  //!< relative to E_L
    double z_;

    State_();
    void get( Dictionary&, const Parameters_& ) const;
    void set( const Dictionary&, const Parameters_&, double delta_EL, nest::Node* );
  };

  struct Buffers_
  {
    Buffers_( eprop_iaf_psc_exp& );
    Buffers_( const Buffers_&, eprop_iaf_psc_exp& );

    nest::RingBuffer spikes_ex_;
    nest::RingBuffer spikes_in_;
    nest::RingBuffer currents_;
    nest::UniversalDataLogger< eprop_iaf_psc_exp > logger_;
  };

  struct Variables_
  {
    double P11_ex_;
    double P11_in_;
    double P21_ex_;
    double P21_in_;
    double P22_;
    double P20_;
    long RefractoryCounts_;
  };

  double
  get_v_m_() const
  {
    return S_.v_m_ + P_.E_L_;
  }
  double
  get_i_syn_ex_() const
  {
    return S_.i_syn_ex_;
  }
  double
  get_i_syn_in_() const
  {
    return S_.i_syn_in_;
  }
  double
  get_surrogate_gradient_() const
  {
    return S_.surrogate_gradient_;
  }
  double
  get_learning_signal_() const
  {
    return S_.learning_signal_;
  }

  Parameters_ P_;
  State_ S_;
  Variables_ V_;
  Buffers_ B_;

  static nest::RecordablesMap< eprop_iaf_psc_exp > recordablesMap_;
};

inline size_t
eprop_iaf_psc_exp::send_test_event( nest::Node& target, size_t receptor_type, nest::synindex, bool )
{
  nest::SpikeEvent e;
  e.set_sender( *this );
  return target.handles_test_event( e, receptor_type );
}

inline size_t
eprop_iaf_psc_exp::handles_test_event( nest::SpikeEvent&, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

inline size_t
eprop_iaf_psc_exp::handles_test_event( nest::CurrentEvent&, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

inline size_t
eprop_iaf_psc_exp::handles_test_event( nest::DataLoggingRequest& dlr, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return B_.logger_.connect_logging_device( dlr, recordablesMap_ );
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_IAF_PSC_EXP_H
