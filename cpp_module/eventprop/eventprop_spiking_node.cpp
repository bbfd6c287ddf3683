/*
 *  eventprop_spiking_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_spiking_node.h"

#include <cmath>
#include <string>

// NEST public headers
#include "exceptions.h"

#include "eventprop_glif3_math.h"

namespace nestgrad
{

void
EventpropSpikingNode::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  // the records grow with every trial: reading them on every status call would cost O(trials) per call
  if ( status_records_ )
  {
    d[ "spike_trials" ] = rec_trial_;
    d[ "spike_times" ] = rec_t_;
    d[ "spike_gdot" ] = rec_gdot_;
    d[ "spike_vdot_plus" ] = rec_vdot_plus_;
    d[ "release_vdot" ] = rec_release_vdot_;
  }
  d[ "record" ] = record_;
  d[ "status_records" ] = status_records_;
  d[ "n_spikes" ] = n_spikes_;
  d[ "n_spiking_trials" ] = n_spiking_trials_;
  d[ "output_index" ] = output_index_;
  d[ "labels" ] = labels_;
  d[ "first_spike_xi" ] = fs_xi_;
  d[ "first_spike_alpha" ] = fs_alpha_;
  d[ "first_spike_beta" ] = fs_beta_;
  d[ "first_spike_tau_s" ] = fs_tau_s_;
  d[ "spike_count_rho" ] = sc_rho_;
  d[ "spike_count_nu" ] = sc_nu_;
  d[ "trial_t_first" ] = t_first_rec_;
  d[ "trial_spike_score" ] = score_rec_;
}

void
EventpropSpikingNode::set_status( const Dictionary& d )
{
  bool record = record_;
  d.update_value( "record", record );
  bool status_records = status_records_;
  d.update_value( "status_records", status_records );
  long output_index = output_index_;
  std::vector< long > labels = labels_;
  double xi = fs_xi_;
  double alpha = fs_alpha_;
  double beta = fs_beta_;
  double tau_s = fs_tau_s_;
  double rho = sc_rho_;
  double nu = sc_nu_;
  d.update_value( "output_index", output_index );
  d.update_value( "labels", labels );
  d.update_value( "first_spike_xi", xi );
  d.update_value( "first_spike_alpha", alpha );
  d.update_value( "first_spike_beta", beta );
  d.update_value( "first_spike_tau_s", tau_s );
  d.update_value( "spike_count_rho", rho );
  d.update_value( "spike_count_nu", nu );

  const std::string me = get_name() + ": ";
  if ( output_index < -1 )
  {
    throw nest::BadProperty( me + "output_index = " + std::to_string( output_index )
      + " must be >= 0 (an output of a first-spike loss) or -1 (none)." );
  }
  for ( const long label : labels )
  {
    if ( label < 0 )
    {
      throw nest::BadProperty( me + "labels contains " + std::to_string( label ) + "; labels must be >= 0." );
    }
  }
  const auto positive = [ &me ]( const char* name, const double x )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( me + name + " = " + std::to_string( x ) + " must be finite and > 0." );
    }
  };
  positive( "first_spike_xi", xi );
  positive( "first_spike_beta", beta );
  if ( not( std::isfinite( alpha ) and alpha >= 0.0 ) )
  {
    throw nest::BadProperty( me + "first_spike_alpha = " + std::to_string( alpha ) + " must be finite and >= 0." );
  }
  if ( not( std::isnan( tau_s ) or ( std::isfinite( tau_s ) and tau_s > 0.0 ) ) )
  {
    throw nest::BadProperty(
      me + "first_spike_tau_s = " + std::to_string( tau_s ) + " ms must be finite and > 0 (NaN: unset)." );
  }
  if ( output_index >= 0 and std::isnan( tau_s ) and std::isnan( default_first_spike_tau_s_() ) )
  {
    throw nest::BadProperty( me + "output_index = " + std::to_string( output_index )
      + " (an output of a first-spike loss) needs first_spike_tau_s (ms): the neuron has no single tau_syn." );
  }
  if ( not( std::isfinite( rho ) and rho >= 0.0 ) )
  {
    throw nest::BadProperty( me + "spike_count_rho = " + std::to_string( rho ) + " must be >= 0." );
  }
  if ( not std::isfinite( nu ) )
  {
    throw nest::BadProperty( me + "spike_count_nu = " + std::to_string( nu ) + " must be finite." );
  }
  EventpropNode::set_status( d );
  record_ = record;
  status_records_ = status_records;
  output_index_ = output_index;
  labels_ = labels;
  fs_xi_ = xi;
  fs_alpha_ = alpha;
  fs_beta_ = beta;
  fs_tau_s_ = tau_s;
  sc_rho_ = rho;
  sc_nu_ = nu;
}

void
EventpropSpikingNode::start_trial_()
{
  reset_trial_state_();
  t_upd_ = 0.0;
  refractory_ = false;
  t_release_ = -1.0;
  tspk_.clear();
  bevents_.clear();
  bnext_ = 0;
  groups_.clear();
  pushes_.clear();
  others_t_.clear();
  predict_( 0.0, 0.0 );
}

void
EventpropSpikingNode::advance_( const double t )
{
  const double u = t - t_upd_;
  if ( u > 0.0 )
  {
    propagate_state_( u );
  }
  t_upd_ = t;
}

namespace
{
// how far past the current step a lazy search looks (ms): a short horizon keeps the cheap upper bounds tight, so
// the costly root search runs only for neurons close to threshold; quiet neurons are checked again every this long
constexpr double crossing_lookahead_ms = 1.0;
}

void
EventpropSpikingNode::predict_( const double t, const double b )
{
  checked_to_ = t;  // the state has just changed at t (= t_upd_): nothing after it is known
  search_crossing_( b );
}

void
EventpropSpikingNode::search_crossing_( const double b )
{
  const double T = schedule_.duration_ms;
  const double end = searches_lazily_() ? std::min( T, b + crossing_lookahead_ms ) : T;
  const double u = first_crossing_between_( checked_to_ - t_upd_, end - t_upd_ );
  t_cross_ = ( u >= 0.0 and t_upd_ + u < T ) ? t_upd_ + u : -1.0;
  checked_to_ = end;
}

void
EventpropSpikingNode::spike_( const double t, const long lag, const long within )
{
  const double step_end = ( within + 1 ) * schedule_.h;
  advance_( t );
  const double gdot = threshold_slope_();
  const double no_release = std::numeric_limits< double >::quiet_NaN();
  if ( tspk_.empty() )
  {
    ++n_spiking_trials_;  // the trial's first spike
  }
  tspk_.push_back( { t, gdot, 0.0, -1.0, no_release, 0.0, 0.0, 0.0, within + 1, step_end - t } );
  reset_at_spike_();
  t_cross_ = -1.0;
  if ( refractory_period_() > 0.0 )
  {
    refractory_ = true;
    const double r = t + refractory_period_();
    t_release_ = r < schedule_.duration_ms ? r : -1.0;
    tspk_.back().release_t = t_release_;
  }
  else
  {
    tspk_.back().vdot_plus = voltage_slope_();
    predict_( t, step_end );
  }
  ++n_spikes_;
  if ( record_ )
  {
    rec_trial_.push_back( trial_ );
    rec_t_.push_back( t );
    rec_gdot_.push_back( gdot );
    rec_vdot_plus_.push_back( tspk_.back().vdot_plus );
    rec_release_vdot_.push_back( tspk_.back().release_vdot );
  }
  // the exact time travels as the offset from the end of the step
  send_spike_( lag, step_end - t );
}

void
EventpropSpikingNode::release_( const double t, const double b )
{
  advance_( t );
  refractory_ = false;
  t_release_ = -1.0;
  tspk_.back().release_vdot = voltage_slope_();
  note_release_();
  if ( record_ )
  {
    rec_release_vdot_.back() = tspk_.back().release_vdot;  // the pending release belongs to the last spike
  }
  predict_( t, b );
}

void
EventpropSpikingNode::start_backward_()
{
  bevents_.clear();
  for ( size_t k = 0; k < tspk_.size(); ++k )
  {
    bevents_.emplace_back( tspk_[ k ].t, 0, k );
    if ( tspk_[ k ].release_t >= 0.0 )
    {
      bevents_.emplace_back( tspk_[ k ].release_t, 1, k );
    }
  }
  // descending time; at equal times the spike before the release (the reverse of the forward order)
  std::stable_sort( bevents_.begin(),
    bevents_.end(),
    []( const auto& x, const auto& y )
    {
      if ( std::get< 0 >( x ) != std::get< 0 >( y ) )
      {
        return std::get< 0 >( x ) > std::get< 0 >( y );
      }
      return std::get< 1 >( x ) < std::get< 1 >( y );
    } );
  bnext_ = 0;
  start_adjoint_();
}

void
EventpropSpikingNode::spike_time_loss_( const long trial )
{
  const double T = schedule_.duration_ms;
  if ( output_index_ >= 0 )
  {
    if ( trial >= static_cast< long >( labels_.size() ) )
    {
      throw nest::KernelException( get_name() + " (output_index " + std::to_string( output_index_ )
        + "): no label for trial " + std::to_string( trial ) + "; labels has " + std::to_string( labels_.size() )
        + " entries." );
    }
    // z_k = -t_k / (xi tau_s); dL/dz_k = softmax(z)_k - [k = label], summed in ascending order of z (independent of
    // the order of arrival); a missing spike counts as t = T and gets no gradient
    const double tau_s = std::isnan( fs_tau_s_ ) ? default_first_spike_tau_s_() : fs_tau_s_;
    const double scale = fs_xi_ * tau_s;
    std::vector< double > zs;
    zs.reserve( others_t_.size() + 1 );
    for ( const double t : others_t_ )
    {
      zs.push_back( -t / scale );
    }
    const double z_own = -t_first_sent_ / scale;
    zs.push_back( z_own );
    std::sort( zs.begin(), zs.end() );
    const double z_max = zs.back();
    double z_sum = 0.0;
    for ( const double z : zs )
    {
      z_sum += std::exp( z - z_max );
    }
    const double logp = ( z_own - z_max ) - std::log( z_sum );
    const bool is_label = labels_[ trial ] == output_index_;
    if ( not tspk_.empty() )
    {
      const double dz = std::exp( logp ) - ( is_label ? 1.0 : 0.0 );
      double g = -dz / scale;
      if ( is_label )
      {
        g += fs_alpha_ / ( fs_beta_ * tau_s ) * std::exp( tspk_.front().t / ( fs_beta_ * tau_s ) );
      }
      tspk_.front().G += g;
    }
  }
  if ( sc_rho_ > 0.0 )
  {
    // s = sum_k (1 - t_k / T); dL/dt_k = -rho (s - nu) / T for every spike
    double score = 0.0;
    for ( const EventpropTrialSpike& sp : tspk_ )
    {
      score += 1.0 - sp.t / T;
    }
    const double g = -sc_rho_ * ( score - sc_nu_ ) / T;
    for ( EventpropTrialSpike& sp : tspk_ )
    {
      sp.G += g;
    }
    score_rec_.push_back( score );
  }
}

void
EventpropSpikingNode::backward_step_( const long lag, const double s_end )
{
  const double T = schedule_.duration_ms;
  while ( bnext_ < bevents_.size() and T - std::get< 0 >( bevents_[ bnext_ ] ) <= s_end )
  {
    const auto [ t, kind, k ] = bevents_[ bnext_++ ];
    apply_pushes_( t );
    EventpropTrialSpike& sp = tspk_[ k ];
    if ( kind == 0 )
    {
      // J_k: the readouts' terms (pushed directly) plus the spiking targets' accumulated adjoints
      for ( EventpropAdjointGroup& g : groups_ )
      {
        propagate_group_to_( g, t );
        sp.J += group_jump_term_( g );
      }
    }
    const double lv = adjoint_event_( t, kind == 1, k );
    if ( kind == 1 )
    {
      send_spike_( lag, -t );  // release message: lambda_v is 0 from here back to the spike
    }
    else
    {
      // replay: the forward time, then lambda_v just before the spike (what the jump set)
      send_spike_( lag, sp.t );
      send_spike_( lag, lv );
    }
  }
}

void
EventpropSpikingNode::add_adjoint_push( const double t,
  const double dv,
  const double tau_m,
  const double tau_syn,
  const double C_m,
  const bool alpha )
{
  if ( alpha != alpha_targets_() )
  {
    const auto kind = []( const bool a )
    {
      return a ? "alpha-shaped synaptic currents (eventprop_glif3_psc_ps)"
               : "an exponential synaptic current (eventprop_iaf_psc_exp_ps)";
    };
    throw nest::KernelException( get_name() + ": a reverse connection from a target with " + kind( alpha )
      + "; the spiking targets of this neuron must have " + kind( alpha_targets_() ) + "." );
  }
  pushes_.push_back( { t, dv, tau_m, tau_syn, C_m } );
}

void
EventpropSpikingNode::propagate_group_to_( EventpropAdjointGroup& g, const double t ) const
{
  const double u = g.t - t;
  if ( u > 0.0 )
  {
    eventprop_target_port_adjoint( g.sv, g.sx, g.si, u, g.tau_m, g.tau_syn, g.C_m, alpha_targets_() );
  }
  g.t = t;
}

double
EventpropSpikingNode::group_jump_term_( const EventpropAdjointGroup& g ) const
{
  if ( alpha_targets_() )
  {
    // a GLIF3 target on port r: w e / tau_r (lambda_x,r / tau_r - lambda_I,r)
    return M_E / g.tau_syn * ( g.sx / g.tau_syn - g.si );
  }
  return g.si / g.tau_syn - g.sv / g.C_m;  // w (lambda_I / tau_syn - lambda_v / C_m)
}

void
EventpropSpikingNode::apply_pushes_( const double t )
{
  // the pushes that the sweep passes before it reaches t, applied from the largest forward time down; the others
  // (due later in the sweep) stay
  const auto due = std::partition(
    pushes_.begin(), pushes_.end(), [ t ]( const EventpropAdjointPush& p ) { return not( p.t > t ); } );
  std::sort( due, pushes_.end(), PushLaterFirst() );
  for ( auto next = pushes_.end(); next != due; )
  {
    const EventpropAdjointPush& p = *--next;
    auto it = std::find_if( groups_.begin(),
      groups_.end(),
      [ &p ]( const EventpropAdjointGroup& g )
      { return g.tau_m == p.tau_m and g.tau_syn == p.tau_syn and g.C_m == p.C_m; } );
    if ( it == groups_.end() )
    {
      groups_.push_back( { p.tau_m, p.tau_syn, p.C_m, schedule_.duration_ms, 0.0, 0.0, 0.0 } );
      it = groups_.end() - 1;
    }
    propagate_group_to_( *it, p.t );
    it->sv += p.dv;
  }
  pushes_.erase( due, pushes_.end() );
}

void
EventpropSpikingNode::update( nest::Time const& origin, const long from, const long to )
{
  update_trials_( origin, from, to );
}

void
EventpropSpikingNode::trial_step_( const long lag, const long within, const std::vector< EventpropArrival >& arrivals )
{
  const double h = schedule_.h;
  const double T = schedule_.duration_ms;
  if ( schedule_.backward and within >= schedule_.n_B and within < schedule_.n_B + schedule_.n_T )
  {
    if ( within == schedule_.n_B )
    {
      start_backward_();
    }
    backward_step_( lag, ( within - schedule_.n_B + 1 ) * h );
    return;
  }
  if ( schedule_.backward and within == schedule_.n_B + schedule_.n_T )
  {
    send_spike_( lag, 0.0 );  // end of the sweep: mirrors evaluate their remaining arrivals
    return;
  }
  if ( schedule_.backward and output_index_ >= 0 )
  {
    // the other outputs' first spike times, only over eventprop_exchange_synapse (on exchange_port(): forward
    // connections between outputs deliver the same messages on their own ports)
    for ( const EventpropArrival& arr : arrivals )
    {
      long arr_trial = 0;
      if ( arr.rport == exchange_port()
        and schedule_.phase_of_stamp( arr.stamp, arr_trial ) == EventpropPhase::y_exchange and arr_trial == trial_ )
      {
        others_t_.push_back( arr.offset );
      }
    }
    if ( within == schedule_.n_T )
    {
      // every spike of the trial is known: the first one (T without a spike) to the other outputs
      t_first_sent_ = tspk_.empty() ? T : tspk_.front().t;
      t_first_rec_.push_back( tspk_.empty() ? std::numeric_limits< double >::infinity() : tspk_.front().t );
      send_spike_( lag, t_first_sent_ );
      return;
    }
  }
  if ( schedule_.backward and within == schedule_.n_c )
  {
    refractory_at_end_ = refractory_;
    spike_time_loss_( trial_ );
    // constants for the mirrors of the reverse connections from this neuron: no loss coefficient, no maximum,
    // the verdict on the last trial's incoming weight gradients (max_trial_gradient; -1 drops them), then the
    // model's own
    send_spike_( lag, 0.0 );
    send_spike_( lag, std::numeric_limits< double >::quiet_NaN() );
    send_spike_( lag, 0.0 );
    send_spike_( lag, trial_gradient_dropped( trial_ - 1 ) ? -1.0 : 0.0 );
    send_mirror_constants_( lag );
    return;
  }
  if ( within * h >= T )
  {
    return;  // between forward and backward pass or trials: nothing happens, arrivals are dropped
  }
  forward_step_( arrivals, lag, within, ( within + 1 ) * h );
}

void
EventpropSpikingNode::forward_step_( const std::vector< EventpropArrival >& arrivals,
  const long lag,
  const long within,
  const double b )
{
  const double T = schedule_.duration_ms;
  const double inf = std::numeric_limits< double >::infinity();
  size_t next = 0;
  // every event below predicts again past b; only a search that stopped before this step's end needs extending
  if ( not refractory_ and t_cross_ < 0.0 and checked_to_ < std::min( b, T ) )
  {
    search_crossing_( b );
  }
  while ( true )
  {
    double t_int = inf;
    if ( refractory_ and t_release_ >= 0.0 and t_release_ <= b )
    {
      t_int = t_release_;
    }
    else if ( not refractory_ and t_cross_ >= 0.0 and t_cross_ <= b )
    {
      t_int = t_cross_;
    }
    double t_arr = inf;
    while ( next < arrivals.size() )
    {
      t_arr = local_time_( arrivals[ next ], trial_ );
      if ( t_arr < T )
      {
        break;
      }
      t_arr = inf;  // at or after the end of the trial: dropped, as the reference does
      ++next;
    }
    if ( t_int == inf and t_arr == inf )
    {
      break;
    }
    if ( t_int <= t_arr )
    {
      if ( refractory_ )
      {
        release_( t_int, b );
      }
      else
      {
        spike_( t_int, lag, within );
      }
    }
    else
    {
      const EventpropArrival& arr = arrivals[ next ];
      if ( not takes_arrival_( arr ) )
      {
        ++next;
        continue;
      }
      advance_( t_arr );
      apply_arrival_( arr );
      ++next;
      if ( not refractory_ )
      {
        predict_( t_arr, b );
      }
    }
  }
}

}  // namespace nestgrad
