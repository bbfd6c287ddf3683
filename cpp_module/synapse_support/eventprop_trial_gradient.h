/*
 *  eventprop_trial_gradient.h
 *
 *  This file is part of nestgrad.
 *
 *  The weight gradient of one trial, kept apart from the batch sum until the trial is over, so that a neuron can
 *  drop it (per-trial gradient clipping, max_trial_gradient) and a bumped batch can be discarded
 *  (discard_batch); held by both copies of an EventProp edge (eventprop_synapse, eventprop_reverse_synapse).
 */

#ifndef NESTGRAD_EVENTPROP_TRIAL_GRADIENT_H
#define NESTGRAD_EVENTPROP_TRIAL_GRADIENT_H

#include "eprop_inline_optimizer.h"

namespace nestgrad
{

struct EventpropTrialGradient
{
  double value = 0.0;  //!< dL/dw of trial `trial` so far (1/pA)
  long trial = -1;     //!< -1: none pending

  void
  add( const double g, const long of_trial )
  {
    value += g;
    trial = of_trial;
  }

  //! true if a gradient of a trial before `current` is pending
  bool
  pending_before( const long current ) const
  {
    return trial >= 0 and trial < current;
  }

  //! The pending trial's gradient joins the batch sum unless `dropped`; nothing is pending afterwards.
  void
  commit( EpropOptimizerState& optimizer, const bool dropped )
  {
    if ( not dropped )
    {
      optimizer.cumulative_gradient += value;
    }
    value = 0.0;
    trial = -1;
  }

  //! The batch in progress (simulated, its step not yet applied) adds nothing and takes no step.
  void
  discard_batch( EpropOptimizerState& optimizer )
  {
    optimizer.cumulative_gradient = 0.0;
    value = 0.0;
    trial = -1;
    ++optimizer.optimization_step;
  }
};

}  // namespace nestgrad

#endif  // NESTGRAD_EVENTPROP_TRIAL_GRADIENT_H
