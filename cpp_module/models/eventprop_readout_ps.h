/*
 *  eventprop_readout_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_READOUT_PS_H
#define NESTGRAD_EVENTPROP_READOUT_PS_H

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
relative to E_L), ``seg_I`` (pA).

The loss and the readout's adjoint (backward pass) are not part of this version of the model.

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
================== ======= =========== ==========================================================================

References
++++++++++

.. [1] Wunderlich TC, Pehle C (2021). Event-based backpropagation can compute exact gradients for spiking neural
       networks. Scientific Reports 11:12829.

Receives
++++++++

SpikeEvent

See also
++++++++

eventprop_iaf_psc_exp_ps, eventprop_synapse

EndUserDocs */

void register_eventprop_readout_ps( const std::string& name );

class eventprop_readout_ps : public EventpropNode
{
public:
  eventprop_readout_ps() = default;
  eventprop_readout_ps( const eventprop_readout_ps& ) = default;

  size_t
  send_test_event( nest::Node&, size_t, nest::synindex, bool ) override
  {
    throw nest::IllegalConnection( "eventprop_readout_ps does not spike: it cannot be the source of a connection." );
  }

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

private:
  void init_buffers_() override;
  void pre_run_hook() override;
  void update( nest::Time const& origin, long from, long to ) override;

  double E_L_ = -70.0;
  EventpropNeuronParams p_;

  long trial_ = -1;
  double v_ = 0.0;
  double i_ = 0.0;
  double t_upd_ = 0.0;

  std::vector< long > seg_trial_;
  std::vector< double > seg_t_;
  std::vector< double > seg_v_;
  std::vector< double > seg_i_;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_READOUT_PS_H
