/*
 *  eventprop_iaf_psc_exp_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_iaf_psc_exp_ps.h"

#include <algorithm>
#include <cmath>
#include <limits>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_iaf_psc_exp_ps( const std::string& name )
{
  nest::register_node_model< eventprop_iaf_psc_exp_ps >( name );
}

eventprop_iaf_psc_exp_ps::eventprop_iaf_psc_exp_ps()
{
  p_.theta = -55.0 - E_L_;
  p_.v_reset = -70.0 - E_L_;
}

void
eventprop_iaf_psc_exp_ps::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  d[ nest::names::C_m ] = p_.C_m;
  d[ nest::names::tau_m ] = p_.tau_m;
  d[ "tau_syn" ] = p_.tau_syn;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::I_e ] = p_.I_e;
  d[ nest::names::V_th ] = p_.theta + E_L_;
  d[ nest::names::V_reset ] = p_.v_reset + E_L_;
  d[ nest::names::t_ref ] = p_.t_ref;
  d[ "adapt_tau" ] = p_.adapt_tau;
  d[ "adapt_beta" ] = p_.adapt_beta;
  d[ nest::names::V_m ] = v_ + E_L_;
  d[ "I_syn" ] = i_;
  d[ "adaptation" ] = a_;
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
  d[ "max_trial_gradient" ] = max_trial_gradient_;
  d[ "trial_t_first" ] = t_first_rec_;
  d[ "trial_spike_score" ] = score_rec_;
}

void
eventprop_iaf_psc_exp_ps::set_status( const Dictionary& d )
{
  double E_L = E_L_;
  double V_th = p_.theta + E_L_;
  double V_reset = p_.v_reset + E_L_;
  EventpropNeuronParams p = p_;
  d.update_value( nest::names::E_L, E_L );
  d.update_value( nest::names::V_th, V_th );
  d.update_value( nest::names::V_reset, V_reset );
  d.update_value( nest::names::C_m, p.C_m );
  d.update_value( nest::names::tau_m, p.tau_m );
  d.update_value( "tau_syn", p.tau_syn );
  d.update_value( nest::names::I_e, p.I_e );
  d.update_value( nest::names::t_ref, p.t_ref );
  d.update_value( "adapt_tau", p.adapt_tau );
  d.update_value( "adapt_beta", p.adapt_beta );
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
  double max_trial_gradient = max_trial_gradient_;
  d.update_value( "max_trial_gradient", max_trial_gradient );
  if ( not( max_trial_gradient > 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": max_trial_gradient = " + std::to_string( max_trial_gradient )
      + " /pA must be > 0 (inf: no clipping)." );
  }
  if ( output_index < -1 )
  {
    throw nest::BadProperty(
      get_name() + ": output_index = " + std::to_string( output_index ) + " must be >= 0 (an output) or -1 (none)." );
  }
  for ( const long label : labels )
  {
    if ( label < 0 )
    {
      throw nest::BadProperty( get_name() + ": labels contains " + std::to_string( label ) + "; labels must be >= 0." );
    }
  }
  if ( not( std::isnan( tau_s ) or ( std::isfinite( tau_s ) and tau_s > 0.0 ) ) )
  {
    throw nest::BadProperty(
      get_name() + ": first_spike_tau_s = " + std::to_string( tau_s ) + " ms must be finite and > 0 (NaN: tau_syn)." );
  }
  if ( not( std::isfinite( alpha ) and alpha >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": first_spike_alpha = " + std::to_string( alpha ) + " must be >= 0." );
  }
  if ( not( std::isfinite( rho ) and rho >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": spike_count_rho = " + std::to_string( rho ) + " must be >= 0." );
  }
  if ( not std::isfinite( nu ) )
  {
    throw nest::BadProperty( get_name() + ": spike_count_nu = " + std::to_string( nu ) + " must be finite." );
  }
  const auto positive = [ this ]( const char* name, const double x )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( get_name() + ": " + name + " = " + std::to_string( x ) + " must be finite and > 0." );
    }
  };
  positive( "C_m", p.C_m );
  positive( "tau_m", p.tau_m );
  positive( "tau_syn", p.tau_syn );
  positive( "adapt_tau", p.adapt_tau );
  positive( "first_spike_xi", xi );
  positive( "first_spike_beta", beta );
  if ( not( V_reset < V_th ) )
  {
    throw nest::BadProperty( get_name() + ": V_reset = " + std::to_string( V_reset ) + " mV must be < V_th = "
      + std::to_string( V_th ) + " mV." );
  }
  if ( not( p.t_ref >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": t_ref = " + std::to_string( p.t_ref ) + " ms must be >= 0." );
  }
  if ( not( p.adapt_beta >= 0.0 ) )
  {
    throw nest::BadProperty( get_name() + ": adapt_beta = " + std::to_string( p.adapt_beta ) + " mV must be >= 0." );
  }
  p.theta = V_th - E_L;
  p.v_reset = V_reset - E_L;
  EventpropNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
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
  max_trial_gradient_ = max_trial_gradient;
}

void
eventprop_iaf_psc_exp_ps::init_buffers_()
{
  clear_inbox_();
}

void
eventprop_iaf_psc_exp_ps::pre_run_hook()
{
  schedule_.calibrate( get_name() );
  kmax_ = eventprop_kern_max( p_.tau_m, p_.tau_syn );
}

void
eventprop_iaf_psc_exp_ps::start_trial_( const long trial )
{
  trial_ = trial;
  v_ = 0.0;
  i_ = 0.0;
  a_ = 0.0;
  t_upd_ = 0.0;
  refractory_ = false;
  t_release_ = -1.0;
  tspk_.clear();
  adj_.clear();
  bevents_.clear();
  bnext_ = 0;
  groups_.clear();
  pushes_.clear();
  others_t_.clear();
  predict_( 0.0 );
}

void
eventprop_iaf_psc_exp_ps::advance_( const double t )
{
  const double u = t - t_upd_;
  if ( u > 0.0 )
  {
    eventprop_propagate( v_, i_, a_, u, p_, refractory_ );
  }
  t_upd_ = t;
}

void
eventprop_iaf_psc_exp_ps::predict_( const double t )
{
  const double T = schedule_.duration_ms;
  const double u = eventprop_first_crossing( v_, i_, a_, T - t, p_, kmax_ );
  t_cross_ = ( u >= 0.0 and t + u < T ) ? t + u : -1.0;
}

void
eventprop_iaf_psc_exp_ps::spike_( const double t, const long lag, const long within )
{
  const double step_end = ( within + 1 ) * schedule_.h;
  advance_( t );
  const double gdot = eventprop_dvdt( v_, i_, p_ ) + a_ / p_.adapt_tau;
  const double no_release = std::numeric_limits< double >::quiet_NaN();
  if ( tspk_.empty() )
  {
    ++n_spiking_trials_;  // the trial's first spike
  }
  tspk_.push_back( { t, gdot, 0.0, -1.0, no_release, 0.0, 0.0, 0.0, within + 1, step_end - t } );
  v_ = p_.v_reset;
  a_ += p_.adapt_beta;
  t_cross_ = -1.0;
  if ( p_.t_ref > 0.0 )
  {
    refractory_ = true;
    const double r = t + p_.t_ref;
    t_release_ = r < schedule_.duration_ms ? r : -1.0;
    tspk_.back().release_t = t_release_;
  }
  else
  {
    tspk_.back().vdot_plus = eventprop_dvdt( v_, i_, p_ );
    predict_( t );
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
eventprop_iaf_psc_exp_ps::release_( const double t )
{
  advance_( t );
  refractory_ = false;
  t_release_ = -1.0;
  tspk_.back().release_vdot = eventprop_dvdt( v_, i_, p_ );
  if ( record_ )
  {
    rec_release_vdot_.back() = tspk_.back().release_vdot;  // the pending release belongs to the last spike
  }
  predict_( t );
}

void
eventprop_iaf_psc_exp_ps::start_backward_()
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
  adj_.clear();
  adj_.push_back( { schedule_.duration_ms, 0.0, 0.0, 0.0 } );
}

void
eventprop_iaf_psc_exp_ps::spike_time_loss_( const long trial )
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
    const double tau_s = std::isnan( fs_tau_s_ ) ? p_.tau_syn : fs_tau_s_;
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
    for ( const TrialSpike& sp : tspk_ )
    {
      score += 1.0 - sp.t / T;
    }
    const double g = -sc_rho_ * ( score - sc_nu_ ) / T;
    for ( TrialSpike& sp : tspk_ )
    {
      sp.G += g;
    }
    score_rec_.push_back( score );
  }
}

void
eventprop_iaf_psc_exp_ps::backward_step_( const long lag, const double s_end )
{
  const double T = schedule_.duration_ms;
  while ( bnext_ < bevents_.size() and T - std::get< 0 >( bevents_[ bnext_ ] ) <= s_end )
  {
    const auto [ t, kind, k ] = bevents_[ bnext_++ ];
    apply_pushes_( t );
    AdjointEntry e = adj_.back();
    const double u = e.t - t;
    if ( u > 0.0 )
    {
      eventprop_adjoint_propagate( e.lv, e.li, e.la, u, p_ );
    }
    e.t = t;
    TrialSpike& sp = tspk_[ k ];
    if ( kind == 1 )
    {
      sp.R = -e.lv * sp.release_vdot;
      e.lv = 0.0;
    }
    else
    {
      // J_k: the readouts' terms (pushed directly) plus the spiking targets' accumulated lambdas
      for ( AdjointGroup& g : groups_ )
      {
        propagate_group_( g, t );
        sp.J += g.si / g.tau_syn - g.sv / g.C_m;
      }
      const double b = -e.lv * sp.vdot_plus + e.la * p_.adapt_beta / p_.adapt_tau + sp.J + sp.R + sp.G;
      e.lv = -b / sp.gdot;
      e.la = e.la + b / sp.gdot;
    }
    adj_.push_back( e );
    if ( kind == 1 )
    {
      send_spike_( lag, -t );  // release message: lambda_v is 0 from here back to the spike
    }
    else
    {
      // replay: the forward time, then lambda_v just before the spike (what the jump set)
      send_spike_( lag, sp.t );
      send_spike_( lag, e.lv );
    }
  }
}

void
eventprop_iaf_psc_exp_ps::add_adjoint_push( const double t,
  const double dv,
  const double tau_m,
  const double tau_syn,
  const double C_m,
  const bool alpha )
{
  if ( alpha )
  {
    throw nest::KernelException( get_name()
      + ": a reverse connection from an eventprop_glif3_psc_ps target; the targets of this neuron must have "
        "exponential synaptic currents." );
  }
  pushes_.push_back( { t, dv, tau_m, tau_syn, C_m } );
  std::push_heap( pushes_.begin(), pushes_.end(), push_later_first_ );
}

bool
eventprop_iaf_psc_exp_ps::push_later_first_( const AdjointPush& x, const AdjointPush& y )
{
  // heap order: the largest forward time comes out first; ties by value, so that the order of arrival (which
  // depends on threads and ranks) does not matter
  if ( x.t != y.t )
  {
    return x.t < y.t;
  }
  return x.dv < y.dv;
}

void
eventprop_iaf_psc_exp_ps::propagate_group_( AdjointGroup& g, const double t )
{
  const double u = g.t - t;
  if ( u > 0.0 )
  {
    g.si = g.si * std::exp( -u / g.tau_syn ) + g.sv * eventprop_kern( u, g.tau_m, g.tau_syn ) / g.C_m;
    g.sv = g.sv * std::exp( -u / g.tau_m );
  }
  g.t = t;
}

void
eventprop_iaf_psc_exp_ps::apply_pushes_( const double t )
{
  while ( not pushes_.empty() and pushes_.front().t > t )
  {
    std::pop_heap( pushes_.begin(), pushes_.end(), push_later_first_ );
    const AdjointPush p = pushes_.back();
    pushes_.pop_back();
    auto it = std::find_if( groups_.begin(),
      groups_.end(),
      [ &p ]( const AdjointGroup& g ) { return g.tau_m == p.tau_m and g.tau_syn == p.tau_syn and g.C_m == p.C_m; } );
    if ( it == groups_.end() )
    {
      groups_.push_back( { p.tau_m, p.tau_syn, p.C_m, schedule_.duration_ms, 0.0, 0.0 } );
      it = groups_.end() - 1;
    }
    propagate_group_( *it, p.t );
    it->sv += p.dv;
  }
}

double
eventprop_iaf_psc_exp_ps::adjoint_current_at( const double t ) const
{
  // the entry that follows t (smallest entry time > t): entries with time > t are a prefix of adj_
  const auto it = std::partition_point(
    adj_.begin(), adj_.end(), [ t ]( const AdjointEntry& e ) { return e.t > t; } );
  if ( it == adj_.begin() )
  {
    return 0.0;  // t >= T
  }
  AdjointEntry e = *( it - 1 );
  const double u = e.t - t;
  if ( u > 0.0 )
  {
    eventprop_adjoint_propagate( e.lv, e.li, e.la, u, p_ );
  }
  return e.li;
}

void
eventprop_iaf_psc_exp_ps::update( nest::Time const& origin, const long from, const long to )
{
  const double h = schedule_.h;
  const double T = schedule_.duration_ms;
  const double inf = std::numeric_limits< double >::infinity();
  for ( long lag = from; lag < to; ++lag )
  {
    const long s = origin.get_steps() + lag;
    std::vector< EventpropArrival > arrivals = take_arrivals_( s + 1 );
    long trial = 0;
    long within = 0;
    if ( not schedule_.locate( s, trial, within ) )
    {
      continue;
    }
    if ( within == 0 )
    {
      start_trial_( trial );
    }
    const double a = within * h;
    const double b = ( within + 1 ) * h;
    if ( trial_ != trial )
    {
      continue;
    }
    if ( schedule_.backward and within >= schedule_.n_B and within < schedule_.n_B + schedule_.n_T )
    {
      if ( within == schedule_.n_B )
      {
        start_backward_();
      }
      backward_step_( lag, ( within - schedule_.n_B + 1 ) * h );
      continue;
    }
    if ( schedule_.backward and within == schedule_.n_B + schedule_.n_T )
    {
      send_spike_( lag, 0.0 );  // end of the sweep: mirrors evaluate their remaining arrivals
      continue;
    }
    if ( schedule_.backward and output_index_ >= 0 )
    {
      // the other outputs' first spike times (only over eventprop_exchange_synapse: a recurrent output layer's
      // forward connections deliver the same messages on port 0)
      for ( const EventpropArrival& arr : arrivals )
      {
        long arr_trial = 0;
        if ( arr.rport == EVENTPROP_EXCHANGE_PORT
          and schedule_.phase_of_stamp( arr.stamp, arr_trial ) == EventpropPhase::y_exchange and arr_trial == trial )
        {
          others_t_.push_back( arr.offset );
        }
      }
      if ( within == schedule_.n_T )
      {
        // every spike of the trial is known: the first one (T without a spike) to the other outputs
        t_first_sent_ = tspk_.empty() ? T : tspk_.front().t;
        t_first_rec_.push_back( tspk_.empty() ? inf : tspk_.front().t );
        send_spike_( lag, t_first_sent_ );
        continue;
      }
    }
    if ( schedule_.backward and within == schedule_.n_c )
    {
      spike_time_loss_( trial );
      // constants for the mirrors of the reverse connections from this neuron (no loss coefficient, no maximum)
      send_spike_( lag, 0.0 );
      send_spike_( lag, std::numeric_limits< double >::quiet_NaN() );
      send_spike_( lag, 0.0 );
      // the verdict on the last trial's incoming weight gradients (max_trial_gradient): -1 drops them
      send_spike_( lag, trial_gradient_dropped( trial - 1 ) ? -1.0 : 0.0 );
      send_spike_( lag, p_.tau_m );
      send_spike_( lag, p_.tau_syn );
      send_spike_( lag, p_.C_m );
      continue;
    }
    if ( a >= T )
    {
      continue;  // between forward and backward pass or trials: nothing happens, arrivals are dropped
    }
    size_t next = 0;
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
        t_arr = local_time_( arrivals[ next ], trial );
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
          release_( t_int );
        }
        else
        {
          spike_( t_int, lag, within );
        }
      }
      else
      {
        advance_( t_arr );
        i_ += arrivals[ next ].weight;
        ++next;
        if ( not refractory_ )
        {
          predict_( t_arr );
        }
      }
    }
  }
}

}  // namespace nestgrad
