/*
 *  eventprop_input_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_INPUT_PS_H
#define NESTGRAD_EVENTPROP_INPUT_PS_H

#include <string>
#include <vector>

#include "eventprop_node.h"

namespace nestgrad
{

/* BeginUserDocs: device, generator, precise spike timing, EventProp

Short description
+++++++++++++++++

Input neuron of nestgrad's EventProp: emits given spike times of each trial as exact off-grid spikes

Description
+++++++++++

``eventprop_input_ps`` is the ``input`` population of the reference engine (python/nestgrad/reference/eventprop)
in NEST. It emits one off-grid spike at trial-local time ``spike_times[i]`` of trial ``spike_trials[i]``, i.e. at
absolute time trial_origin + spike_trials[i] trial_period + spike_times[i] (trials laid out as for
``eventprop_iaf_psc_exp_ps``). A spike at t = 0 is sent in the trial's first step with offset h (time exactly 0),
not in the step before the trial, which belongs to the previous period. Unlike ``spike_generator``, it is an EventProp node: it connects through
``eventprop_synapse``, and with ``backward`` = true it replays each input spike in the backward window of its
trial at mirrored time s = T - t (offset: the forward time t), so that its outgoing ``eventprop_synapse``
connections read their target's adjoint at the arrival (docs/eventprop_nest_design.md). In every trial's period it
also sends one message in step n_c (so that its outgoing synapses apply a pending optimizer step) and one when the
backward sweep ends (step n_B + n_T: their trial gradients are complete, see ``max_trial_gradient`` of
``eventprop_iaf_psc_exp_ps``).

Parameters
++++++++++

================== ======= =========== ==========================================================================
``spike_times``    ms      []          trial-local spike times, each in [0, trial_duration)
``spike_trials``           []          trial index of each spike (>= 0, same length as spike_times; empty: 0)
``trial_origin``   ms      1.0         start of trial 0 (a multiple of the resolution, >= one step)
``trial_duration`` ms      100.0       length T of a trial
``trial_period``   ms      200.0       distance between trial starts (a multiple of the resolution, >= T)
``backward``               false       replay the inputs in the backward pass of each period
``delay_bound``    ms      1.0         upper bound of every delay (sets the layout of the period)
================== ======= =========== ==========================================================================

Sends
+++++

SpikeEvent (off-grid)

See also
++++++++

eventprop_iaf_psc_exp_ps, eventprop_synapse, spike_generator

EndUserDocs */

void register_eventprop_input_ps( const std::string& name );

class eventprop_input_ps : public EventpropNode
{
public:
  eventprop_input_ps() = default;
  eventprop_input_ps( const eventprop_input_ps& ) = default;

  using EventpropNode::handles_test_event;
  size_t
  handles_test_event( nest::SpikeEvent&, size_t ) override
  {
    throw nest::IllegalConnection( "eventprop_input_ps receives no spikes: it cannot be the target of a connection." );
  }

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

private:
  void pre_run_hook() override;
  void update( nest::Time const& origin, long from, long to ) override;

  std::vector< double > spike_times_;
  std::vector< long > spike_trials_;

  struct Emission
  {
    long stamp;
    double offset;
  };
  std::vector< Emission > emissions_;  //!< sorted by stamp, then by time
  size_t next_ = 0;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_INPUT_PS_H
