/*
 *  eventprop_probe_ps.h
 *
 *  This file is part of nestgrad.
 */

#ifndef NESTGRAD_EVENTPROP_PROBE_PS_H
#define NESTGRAD_EVENTPROP_PROBE_PS_H

#include <string>
#include <vector>

#include "eventprop_node.h"

namespace nestgrad
{

/* BeginUserDocs: device, EventProp, test

Short description
+++++++++++++++++

Test node of the EventProp message channel: sends off-grid spikes with arbitrary doubles in the offset field and
records what arrives

Description
+++++++++++

EventProp in NEST (docs/eventprop_nest_design.md, Option B) carries the adjoint of the backward pass in the
offset field of off-grid spikes. ``eventprop_probe_ps`` checks that this channel transmits any double unchanged
across threads and MPI ranks: at the end of step ``emit_steps[i]`` (absolute step number, the spike's stamp) it
sends one spike whose offset field is ``emit_offsets[i]``; several entries with the same step are sent in list
order within that step. Every spike it receives is appended, in the order ``handle`` is called, to
``received_steps`` (stamp + delay), ``received_offsets`` (the offset field, verbatim) and ``received_weights``.
It has no dynamics and is used by tests only (tests/test_eventprop_nest_probe.py).

Parameters
++++++++++

=================== ======= ======================================================================================
``emit_steps``      steps   list of integers: absolute stamps of the spikes to send
``emit_offsets``            list of doubles, same length: the offset field of each spike (any double)
``received_steps``  steps   read-only: delivery steps of the spikes received
``received_offsets``        read-only: offset fields received
``received_weights``        read-only: weights received
=================== ======= ======================================================================================

Sends
+++++

SpikeEvent (off-grid)

Receives
++++++++

SpikeEvent

See also
++++++++

eventprop_synapse

EndUserDocs */

void register_eventprop_probe_ps( const std::string& name );

class eventprop_probe_ps : public EventpropNode
{
public:
  eventprop_probe_ps() = default;
  eventprop_probe_ps( const eventprop_probe_ps& ) = default;

  using EventpropNode::handle;
  void handle( nest::SpikeEvent& e ) override;

  void get_status( Dictionary& d ) const override;
  void set_status( const Dictionary& d ) override;

private:
  void
  pre_run_hook() override
  {
  }
  void update( nest::Time const& origin, long from, long to ) override;

  std::vector< long > emit_steps_;
  std::vector< double > emit_offsets_;
  std::vector< long > received_steps_;
  std::vector< double > received_offsets_;
  std::vector< double > received_weights_;
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_PROBE_PS_H
