/*
 *  eprop_glif3_psc.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EPROP_GLIF3_PSC_H
#define NESTGRAD_EPROP_GLIF3_PSC_H

#include <deque>
#include <string>
#include <vector>

// NEST public headers
#include "event.h"
#include "nest_types.h"
#include "ring_buffer.h"
#include "universal_data_logger.h"

#include "eprop_nestml_node.h"

namespace nestgrad
{

/* BeginUserDocs: neuron, e-prop plasticity, current-based, integrate-and-fire, generalized integrate-and-fire

Short description
+++++++++++++++++

GLIF3 neuron (LIF with two after-spike currents) with alpha-shaped synaptic currents, trainable with e-prop

Description
+++++++++++

``eprop_glif3_psc`` is the level-3 generalized leaky integrate-and-fire model of Teeter et al. (2018) [1]_ ("LIF +
after-spike currents") with one alpha-shaped synaptic current per receptor port, the neuron of the V1 models of
Billeh et al. (2020) [2]_, with NEST's e-prop interface so that its incoming synapses learn through
``eprop_vector_synapse``. Without plasticity it is NEST's ``glif_psc`` configured as GLIF3
(``after_spike_currents=True``, ``spike_dependent_threshold=False``, ``adapting_threshold=False``): same parameter
names, units, update order and propagators (tests/test_glif3_eprop.py compares spike times and V_m).

Dynamics, with :math:`U = V_\text{m} - E_\text{L}`, step :math:`h`, after-spike currents :math:`A_j` (j = 1, 2)
and synaptic currents :math:`I_r` with derivatives :math:`y_r` (receptor port r = 1 .. len(tau_syn)). In a step
in which the neuron is not refractory:

.. math::

  \bar A^t &= \sum_j c_j A_j^{t-1} , \quad c_j = \frac{1 - e^{-k_j h}}{k_j h} \quad\text{(exact mean over the step)},\\
  U^t &= P_{33} U^{t-1} + P_{30} \left( I_\text{e} + I_\text{stim}^{t-1} + \bar A^t \right)
        + \sum_r \left( P_{31,r} y_r^{t-1} + P_{32,r} I_r^{t-1} \right) ,\\
  A_j^t &= d_j A_j^{t-1} , \quad d_j = e^{-k_j h} .

If :math:`U^t > V_\text{th} - E_\text{L}` the neuron spikes (:math:`z^t = 1`): :math:`U \leftarrow V_\text{reset} -
E_\text{L}`, :math:`A_j \leftarrow a_j + \rho_j A_j` with :math:`\rho_j = r_j e^{-k_j t_\text{ref}}` (the decay
over the refractory period, during which :math:`U` and :math:`A_j` are frozen for ``t_ref`` steps). The synaptic
currents always evolve, :math:`I_r^t = h P_{11,r} y_r^{t-1} + P_{11,r} I_r^{t-1}`,
:math:`y_r^t = P_{11,r} y_r^{t-1} + \frac{e}{\tau_{\text{syn},r}} \sum_i W_{ri} z_i^{t-d}`, so that a spike of
weight :math:`W` produces a current that peaks at :math:`W` (pA) after :math:`\tau_{\text{syn},r}`.
:math:`P_{33}, P_{30}, P_{31,r}, P_{32,r}` are those of ``glif_psc`` (NEST's ``IAFPropagatorAlpha``).

E-prop. The eligibility vector of a synapse on port r is the derivative of the neuron's state with respect to the
weight, :math:`\epsilon = (\epsilon_y, \epsilon_I, \epsilon_U, \epsilon_{A_1}, \epsilon_{A_2})`, with the spike
:math:`z^t = H(U^t - \vartheta)` differentiated through the surrogate gradient :math:`\psi^t` and the membrane reset
not differentiated (the e-prop convention of NEST's models). In a non-refractory step:

.. math::

  \epsilon_U^t &= P_{33} \epsilon_U^{t-1} + P_{30} \sum_j c_j \epsilon_{A_j}^{t-1}
                 + P_{31,r} \epsilon_y^{t-1} + P_{32,r} \epsilon_I^{t-1} ,\\
  \epsilon_{A_j}^t &= \left( 1 + z^t (\rho_j - 1) \right) d_j \epsilon_{A_j}^{t-1}
                 + \psi^t \epsilon_U^t \left( a_j + (\rho_j - 1) d_j A_j^{t-1} \right) ,\\
  e^t &= \psi^t \epsilon_U^t ;

in a refractory step :math:`\epsilon_U` and :math:`\epsilon_{A_j}` are frozen and :math:`\psi^t = e^t = 0`. Always
:math:`\epsilon_I^t = h P_{11,r} \epsilon_y^{t-1} + P_{11,r} \epsilon_I^{t-1}` and
:math:`\epsilon_y^t = P_{11,r} \epsilon_y^{t-1} + \frac{e}{\tau_{\text{syn},r}} z_i^{t-d}`. The after-spike
currents make the eligibility of a synapse depend on the neuron's own past spikes, as the adaptive threshold does
in NEST's ``eprop_iaf_adapt``. Filtering, learning signal, firing-rate regularisation and the ISI cutoff are those
of NEST's e-prop neurons (see ``eprop_iaf_psc_exp``). Beyond the cutoff the vector decays with the propagator of a
non-refractory step without spikes (what the neuron did there is not kept). The neuron keeps, per step, whether
it was refractory or spiked and the after-spike currents' jump coefficients next to NEST's e-prop history.

Because the eligibility vector has five components and the synapse must know its receptor port, this neuron
learns through ``eprop_vector_synapse`` (its status says so: ``eprop_synapse_model``); NEST's ``eprop_synapse`` is
refused at connection time.

Surrogate gradients are NEST's four functions, evaluated on :math:`U^t` against
:math:`V_\text{th} - E_\text{L}` (zero while refractory).

Parameters
++++++++++

=============================== ======= =========================== ================== ===========================
**Neuron parameters** (names, units and defaults of ``glif_psc``)
------------------------------------------------------------------------------------------------------------------
Parameter                       Unit    Math equivalent             Default            Description
=============================== ======= =========================== ================== ===========================
``C_m``                         pF      :math:`C_\text{m}`          58.72              Membrane capacitance (> 0)
``g``                           nS      :math:`g`                   9.43               Membrane conductance (> 0)
``E_L``                         mV      :math:`E_\text{L}`          -78.85             Resting potential
``V_th``                        mV      :math:`V_\text{th}`         -51.68             Spike threshold
``V_reset``                     mV      :math:`V_\text{reset}`      -78.85             Reset potential (< V_th)
``t_ref``                       ms      :math:`t_\text{ref}`        3.75               Refractory period (>= 0)
``asc_init``                    pA                                  [0.0, 0.0]         Initial after-spike
                                                                                       currents
``asc_decay``                   1/ms    :math:`k_j`                 [0.003, 0.1]       Decay rates (> 0)
``asc_amps``                    pA      :math:`a_j`                 [-9.18, -198.94]   Increments per spike
``asc_r``                               :math:`r_j`                 [1.0, 1.0]         Fraction kept at a spike
                                                                                       ([0, 1])
``tau_syn``                     ms      :math:`\tau_{\text{syn},r}` [2.0, 2.0, 2.0,    Synaptic time constant per
                                                                    2.0]               receptor port (> 0)
``I_e``                         pA      :math:`I_\text{e}`          0.0                Constant input current
                                                                                       (not in glif_psc)
=============================== ======= =========================== ================== ===========================

The four ``asc_*`` vectors have exactly two entries (GLIF3 as fitted by the Allen Institute). ``tau_syn`` has one
entry per receptor port (receptor types 1 .. len(tau_syn)); it cannot shrink once the neuron has connections.

The e-prop parameters are those of NEST's e-prop neurons with their defaults: ``c_reg`` (0.0), ``f_target``
(10.0 Hz), ``kappa`` (0.97), ``kappa_reg`` (0.97), ``surrogate_gradient_function`` ("piecewise_linear"),
``surrogate_gradient_height`` (0.3), ``surrogate_gradient_width`` (1.0), ``eprop_isi_trace_cutoff`` (inf ms),
``flush_event_send_interval`` (inf ms); see ``eprop_iaf_psc_exp``. ``event_segment_steps`` (32; 2, 4, 8, 16 or 32)
is the segment length of the running products that ``eprop_event_synapse`` reads: long segments need fewer lookups
per window (low rates, long inter-spike intervals), short ones sum fewer steps one by one in windows that lie inside
the segment being filled (high rates; nestgrad's V1 column uses 8). It changes speed only, not the updates.

State: ``V_m`` (mV), ``ASCurrents`` (pA, two entries).

Recordables
+++++++++++

``V_m`` (mV), ``I_syn`` (pA, sum of the synaptic currents at the start of the last integrated step, as in
glif_psc), ``ASCurrents_sum`` (pA, mean after-spike current over the last integrated step), ``surrogate_gradient``,
``learning_signal`` (pA), ``eprop_history_duration`` (ms).

Usage
+++++

Connect inputs and recurrent neurons with ``eprop_vector_synapse`` and a ``receptor_type`` in 1 .. len(tau_syn)
(delay one step); learning signals arrive from ``eprop_readout`` through ``eprop_learning_signal_connection``.
Dale's law is kept by the synapse's weight bounds (``Wmin = 0`` for excitatory, ``Wmax = 0`` for inhibitory
synapse copies, nestgrad.networks does this). ``nestgrad.networks.eprop_classic`` builds the small e-prop networks
with it (excitatory weights on port 1, inhibitory ones on port 2).

References
++++++++++

.. [1] Teeter C, Iyer R, Menon V, Gouwens N, Feng D, Berg J, Szafer A, Cain N, Zeng H, Hawrylycz M, Koch C,
       Mihalas S (2018). Generalized leaky integrate-and-fire models classify multiple neuron types. Nature
       Communications 9:709. https://doi.org/10.1038/s41467-017-02717-4
.. [2] Billeh YN, Cai B, Gratiy SL, Dai K, Iyer R, Gouwens NW, Abbasi-Asl R, Jia X, Siegle JH, Olsen SR, Koch C,
       Mihalas S, Arkhipov A (2020). Systematic integration of structural and functional data into multi-scale
       models of mouse primary visual cortex. Neuron 106(3):388-403. https://doi.org/10.1016/j.neuron.2020.01.040
.. [3] Bellec G, Scherr F, Subramoney A, Hajek E, Salaj D, Legenstein R, Maass W (2020). A solution to the
       learning dilemma for recurrent networks of spiking neurons. Nature Communications 11:3625.
       https://doi.org/10.1038/s41467-020-17236-y
.. [4] Chen G, Scherr F, Maass W (2022). A data-based large-scale model for primary visual cortex enables
       brain-like robust and versatile visual processing. Science Advances 8:eabq7592.
       https://doi.org/10.1126/sciadv.abq7592

Sends
+++++

SpikeEvent

Receives
++++++++

SpikeEvent, CurrentEvent, LearningSignalConnectionEvent, DataLoggingRequest

See also
++++++++

glif_psc, glif3_psc_nestml, eprop_vector_synapse, eprop_iaf_psc_exp, eprop_readout

EndUserDocs */

void register_eprop_glif3_psc( const std::string& name );

class eprop_glif3_psc : public EpropNestmlNode
{
public:
  eprop_glif3_psc();
  eprop_glif3_psc( const eprop_glif3_psc& );

  using nest::Node::handle;
  using nest::Node::handles_test_event;
  using EpropNestmlNode::handle;
  using EpropNestmlNode::handles_test_event;

  size_t send_test_event( nest::Node&, size_t, nest::synindex, bool ) override;

  void handle( nest::SpikeEvent& ) override;
  void handle( nest::CurrentEvent& ) override;
  void handle( nest::DataLoggingRequest& ) override;

  size_t handles_test_event( nest::SpikeEvent&, size_t ) override;
  size_t handles_test_event( nest::CurrentEvent&, size_t ) override;
  size_t handles_test_event( nest::DataLoggingRequest&, size_t ) override;

  void get_status( Dictionary& ) const override;
  void set_status( const Dictionary& ) override;

  void compute_gradient_vector( long t_spike,
    long t_spike_previous,
    size_t rport,
    EpropVectorTrace& trace,
    bool is_flush_event,
    bool previous_was_flush_event ) override;

  int
  eligibility_size() const override
  {
    return 5;
  }

  bool
  needs_vector_synapse() const override
  {
    return true;
  }

protected:
  // eprop_event_synapse: running products of the per-step maps of each port's eligibility vector (y, I, U, A1, A2),
  // which change with the surrogate gradient, spikes and refractoriness (docs/event_driven_eprop.md)
  std::string
  eprop_event_unsupported_() const override
  {
    return {};
  }
  int eprop_event_ports_( std::vector< EventPortRecursion >& ports ) const override;
  void event_step_map_( size_t port, long t, double psi, double* A, double* h ) const override;
  void event_spike_input_( size_t port, double psi, double* B, double& hz ) const override;
  size_t
  event_port_index_( const size_t rport ) const override
  {
    return rport - 1;  // receptor types 1..n
  }
  //! event_segment_steps (a power of two, checked in Parameters_::set)
  int
  event_product_segment_shift_() const override
  {
    return __builtin_ctzl( static_cast< unsigned long >( P_.event_segment_steps_ ) );
  }

public:
  static constexpr size_t n_asc = 2;  //!< after-spike currents of GLIF3

private:
  void init_buffers_() override;
  void pre_run_hook() override;
  void update( nest::Time const&, const long, const long ) override;

  friend class nest::RecordablesMap< eprop_glif3_psc >;
  friend class nest::UniversalDataLogger< eprop_glif3_psc >;

  //! Parameters in user units; voltages are stored relative to E_L (glif_psc's convention).
  struct Parameters_
  {
    double C_m_;       //!< pF
    double g_;         //!< nS
    double E_L_;       //!< mV
    double th_inf_;    //!< mV, threshold relative to E_L
    double V_reset_;   //!< mV, relative to E_L
    double t_ref_;     //!< ms
    double I_e_;       //!< pA
    std::vector< double > asc_init_;   //!< pA
    std::vector< double > asc_decay_;  //!< 1/ms
    std::vector< double > asc_amps_;   //!< pA
    std::vector< double > asc_r_;
    std::vector< double > tau_syn_;  //!< ms, one per receptor port
    long event_segment_steps_;       //!< segment length of eprop_event_synapse's running products (steps)
    bool has_connections_;

    Parameters_();
    size_t
    n_receptors() const
    {
      return tau_syn_.size();
    }
    void get( Dictionary& ) const;
    //! Sets, validates and returns the change of E_L.
    double set( const Dictionary&, nest::Node* );
  };

  struct State_
  {
    double U_;  //!< mV, relative to E_L
    double asc_[ n_asc ];
    double asc_sum_;  //!< mean after-spike current of the last integrated step
    double I_syn_;    //!< synaptic current at the start of the last integrated step
    double i_stim_;   //!< pA, current input received in the previous step
    std::vector< double > y1_;  //!< derivative-like component of each alpha current (pA/ms)
    std::vector< double > y2_;  //!< alpha currents (pA)
    long refractory_steps_;
    double surrogate_gradient_;
    double learning_signal_;

    explicit State_( const Parameters_& );
    void get( Dictionary&, const Parameters_& ) const;
    void set( const Dictionary&, const Parameters_&, double delta_EL, nest::Node* );
  };

  struct Buffers_
  {
    Buffers_( eprop_glif3_psc& );
    Buffers_( const Buffers_&, eprop_glif3_psc& );

    std::vector< nest::RingBuffer > spikes_;  //!< one per receptor port
    nest::RingBuffer currents_;
    nest::UniversalDataLogger< eprop_glif3_psc > logger_;
  };

  struct Variables_
  {
    double P33_;
    double P30_;
    double asc_decay_rate_[ n_asc ];   //!< d_j = exp(-k_j h)
    double asc_stable_coeff_[ n_asc ]; //!< c_j, exact mean over a step
    double asc_refr_decay_[ n_asc ];   //!< rho_j = r_j exp(-k_j t_ref)
    std::vector< double > P11_;
    std::vector< double > P21_;
    std::vector< double > P31_;
    std::vector< double > P32_;
    std::vector< double > psc_initial_;
    long refractory_counts_;
  };

  /**
   * What the eligibility recursion needs of one step besides NEST's e-prop history: whether U and the after-spike
   * currents were frozen (refractory) or the neuron spiked, and the derivative of the after-spike current update
   * with respect to the spike, a_j + (rho_j - 1) d_j A_j^{t-1}.
   */
  struct StepRecord
  {
    double asc_jump[ n_asc ];
    bool refractory;
    bool spiked;
  };

  const StepRecord& step_record_( long t ) const;
  StepRecord current_record_ {};  //!< the step being updated (for eprop_event_synapse's running products)

  double
  get_V_m_() const
  {
    return S_.U_ + P_.E_L_;
  }
  double
  get_I_syn_() const
  {
    return S_.I_syn_;
  }
  double
  get_asc_sum_() const
  {
    return S_.asc_sum_;
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

  std::deque< StepRecord > step_records_;  //!< aligned with the e-prop history: first entry is step record_t0_
  long record_t0_;

  static nest::RecordablesMap< eprop_glif3_psc > recordablesMap_;
};

inline size_t
eprop_glif3_psc::send_test_event( nest::Node& target, size_t receptor_type, nest::synindex, bool )
{
  nest::SpikeEvent e;
  e.set_sender( *this );
  return target.handles_test_event( e, receptor_type );
}

inline size_t
eprop_glif3_psc::handles_test_event( nest::SpikeEvent&, size_t receptor_type )
{
  // receptor types 1 .. n are the ports (as glif_psc); the port is passed on as the connection's rport
  if ( receptor_type < 1 or receptor_type > P_.n_receptors() )
  {
    throw nest::IncompatibleReceptorType( receptor_type, get_name(), "SpikeEvent" );
  }
  P_.has_connections_ = true;
  return receptor_type;
}

inline size_t
eprop_glif3_psc::handles_test_event( nest::CurrentEvent&, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

inline size_t
eprop_glif3_psc::handles_test_event( nest::DataLoggingRequest& dlr, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return B_.logger_.connect_logging_device( dlr, recordablesMap_ );
}

}  // namespace nestgrad

#endif  // NESTGRAD_EPROP_GLIF3_PSC_H
