/*
 *  eventprop_glif3_psc_ps.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_glif3_psc_ps.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

// NEST public headers
#include "exceptions.h"
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_glif3_psc_ps( const std::string& name )
{
  nest::register_node_model< eventprop_glif3_psc_ps >( name );
}

namespace
{
std::string
list_string( const std::vector< double >& v )
{
  std::ostringstream out;
  out << "[";
  for ( size_t k = 0; k < v.size(); ++k )
  {
    out << ( k ? ", " : "" ) << v[ k ];
  }
  out << "]";
  return out.str();
}
}  // namespace

eventprop_glif3_psc_ps::eventprop_glif3_psc_ps()
{
  p_.theta = -51.68 - E_L_;
  p_.v_reset = -78.85 - E_L_;
  p_.finish();
}

size_t
eventprop_glif3_psc_ps::handles_test_event( nest::SpikeEvent&, const size_t receptor_type )
{
  // port 0: reverse and exchange connections of the backward pass (eventprop_synapse refuses it, see
  // check_forward_port); ports 1..R: the alpha currents
  if ( receptor_type > p_.n_ports() )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  if ( receptor_type > 0 )
  {
    has_connections_ = true;
  }
  return receptor_type;
}

void
eventprop_glif3_psc_ps::check_forward_port( const size_t receptor_type ) const
{
  if ( receptor_type < 1 or receptor_type > p_.n_ports() )
  {
    throw nest::IllegalConnection( get_name() + ": receptor_type " + std::to_string( receptor_type )
      + " is not a receptor port; forward connections use ports 1.." + std::to_string( p_.n_ports() )
      + " (one per tau_syn)." );
  }
}

void
eventprop_glif3_psc_ps::get_status( Dictionary& d ) const
{
  EventpropNode::get_status( d );
  d[ nest::names::C_m ] = p_.C_m;
  d[ nest::names::g ] = p_.g;
  d[ nest::names::E_L ] = E_L_;
  d[ nest::names::V_th ] = p_.theta + E_L_;
  d[ nest::names::V_reset ] = p_.v_reset + E_L_;
  d[ nest::names::t_ref ] = p_.t_ref;
  d[ nest::names::I_e ] = p_.I_e;
  d[ nest::names::asc_init ] = asc_init_;
  d[ nest::names::asc_decay ] = p_.asc_decay;
  d[ nest::names::asc_amps ] = p_.asc_amps;
  d[ nest::names::asc_r ] = p_.asc_r;
  d[ nest::names::tau_syn ] = p_.tau_syn;
  d[ nest::names::tau_m ] = p_.tau_m;
  const size_t na = p_.n_asc();
  const size_t nr = p_.n_ports();
  if ( s_.size() == p_.size() )
  {
    d[ nest::names::V_m ] = s_[ 0 ] + E_L_;
    d[ nest::names::ASCurrents ] = std::vector< double >( s_.begin() + 1, s_.begin() + 1 + na );
    d[ "I_syn" ] = std::vector< double >( s_.begin() + 1 + na + nr, s_.end() );
  }
  else
  {
    d[ nest::names::V_m ] = E_L_;
    d[ nest::names::ASCurrents ] = asc_init_;
    d[ "I_syn" ] = std::vector< double >( nr, 0.0 );
  }
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
  d[ "spike_count_rho" ] = sc_rho_;
  d[ "spike_count_nu" ] = sc_nu_;
  d[ "trial_spike_score" ] = score_rec_;
  d[ "output_index" ] = output_index_;
  d[ "labels" ] = labels_;
  d[ "first_spike_xi" ] = fs_xi_;
  d[ "first_spike_alpha" ] = fs_alpha_;
  d[ "first_spike_beta" ] = fs_beta_;
  d[ "first_spike_tau_s" ] = fs_tau_s_;
  d[ "trial_t_first" ] = t_first_rec_;
}

void
eventprop_glif3_psc_ps::set_status( const Dictionary& d )
{
  double E_L = E_L_;
  double V_th = p_.theta + E_L_;
  double V_reset = p_.v_reset + E_L_;
  EventpropGlif3Params p = p_;
  std::vector< double > asc_init = asc_init_;
  d.update_value( nest::names::E_L, E_L );
  d.update_value( nest::names::V_th, V_th );
  d.update_value( nest::names::V_reset, V_reset );
  d.update_value( nest::names::C_m, p.C_m );
  d.update_value( nest::names::g, p.g );
  d.update_value( nest::names::t_ref, p.t_ref );
  d.update_value( nest::names::I_e, p.I_e );
  d.update_value( nest::names::asc_init, asc_init );
  d.update_value( nest::names::asc_decay, p.asc_decay );
  d.update_value( nest::names::asc_amps, p.asc_amps );
  d.update_value( nest::names::asc_r, p.asc_r );
  d.update_value( nest::names::tau_syn, p.tau_syn );
  bool record = record_;
  d.update_value( "record", record );
  bool status_records = status_records_;
  d.update_value( "status_records", status_records );
  double rho = sc_rho_;
  double nu = sc_nu_;
  d.update_value( "spike_count_rho", rho );
  d.update_value( "spike_count_nu", nu );
  long output_index = output_index_;
  std::vector< long > labels = labels_;
  double xi = fs_xi_;
  double alpha = fs_alpha_;
  double beta = fs_beta_;
  double tau_s = fs_tau_s_;
  d.update_value( "output_index", output_index );
  d.update_value( "labels", labels );
  d.update_value( "first_spike_xi", xi );
  d.update_value( "first_spike_alpha", alpha );
  d.update_value( "first_spike_beta", beta );
  d.update_value( "first_spike_tau_s", tau_s );

  const std::string me = get_name() + ": ";
  const auto finite = [ &me ]( const char* name, const double x, const char* unit )
  {
    if ( not std::isfinite( x ) )
    {
      throw nest::BadProperty( me + name + " = " + std::to_string( x ) + unit + " must be finite." );
    }
  };
  const auto positive = [ &me ]( const char* name, const double x, const char* unit )
  {
    if ( not( std::isfinite( x ) and x > 0.0 ) )
    {
      throw nest::BadProperty( me + name + " = " + std::to_string( x ) + unit + " must be finite and > 0." );
    }
  };
  positive( "C_m", p.C_m, " pF" );
  positive( "g", p.g, " nS" );
  finite( "E_L", E_L, " mV" );
  finite( "V_th", V_th, " mV" );
  finite( "V_reset", V_reset, " mV" );
  finite( "I_e", p.I_e, " pA" );
  if ( not( std::isfinite( p.t_ref ) and p.t_ref >= 0.0 ) )
  {
    throw nest::BadProperty( me + "t_ref = " + std::to_string( p.t_ref ) + " ms must be finite and >= 0." );
  }
  if ( not( V_reset < V_th ) )
  {
    throw nest::BadProperty(
      me + "V_reset = " + std::to_string( V_reset ) + " mV must be < V_th = " + std::to_string( V_th ) + " mV." );
  }
  const std::pair< const char*, const std::vector< double >* > asc[] = {
    { "asc_init", &asc_init }, { "asc_amps", &p.asc_amps }, { "asc_r", &p.asc_r }
  };
  for ( const auto& [ name, values ] : asc )
  {
    if ( values->size() != p.asc_decay.size() )
    {
      throw nest::BadProperty( me + name + " = " + list_string( *values ) + " has " + std::to_string( values->size() )
        + " entries but asc_decay = " + list_string( p.asc_decay ) + " has " + std::to_string( p.asc_decay.size() )
        + " (one per after-spike current)." );
    }
    for ( const double x : *values )
    {
      if ( not std::isfinite( x ) )
      {
        throw nest::BadProperty( me + name + " = " + list_string( *values ) + " must be finite." );
      }
    }
  }
  for ( const double k : p.asc_decay )
  {
    if ( not( std::isfinite( k ) and k > 0.0 ) )
    {
      throw nest::BadProperty( me + "asc_decay = " + list_string( p.asc_decay ) + " 1/ms: every entry must be > 0." );
    }
  }
  if ( p.tau_syn.empty() )
  {
    throw nest::BadProperty( me + "tau_syn = []: needs at least one entry (one per receptor port)." );
  }
  for ( const double tau : p.tau_syn )
  {
    if ( not( std::isfinite( tau ) and tau > 0.0 ) )
    {
      throw nest::BadProperty( me + "tau_syn = " + list_string( p.tau_syn ) + " ms: every entry must be > 0." );
    }
  }
  if ( p.tau_syn.size() < p_.tau_syn.size() and has_connections_ )
  {
    throw nest::BadProperty( me + "tau_syn = " + list_string( p.tau_syn ) + ": the neuron has connections on "
      + std::to_string( p_.tau_syn.size() ) + " ports, their number cannot shrink." );
  }
  if ( not( std::isfinite( rho ) and rho >= 0.0 ) )
  {
    throw nest::BadProperty( me + "spike_count_rho = " + std::to_string( rho ) + " must be >= 0." );
  }
  finite( "spike_count_nu", nu, "" );
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
  positive( "first_spike_xi", xi, "" );
  positive( "first_spike_beta", beta, "" );
  if ( not( std::isfinite( alpha ) and alpha >= 0.0 ) )
  {
    throw nest::BadProperty( me + "first_spike_alpha = " + std::to_string( alpha ) + " must be finite and >= 0." );
  }
  if ( not( std::isnan( tau_s ) or ( std::isfinite( tau_s ) and tau_s > 0.0 ) ) )
  {
    throw nest::BadProperty( me + "first_spike_tau_s = " + std::to_string( tau_s ) + " ms must be finite and > 0." );
  }
  if ( output_index >= 0 and std::isnan( tau_s ) )
  {
    throw nest::BadProperty( me + "output_index = " + std::to_string( output_index )
      + " (an output of a first-spike loss) needs first_spike_tau_s (ms): a GLIF3 neuron has no single tau_syn." );
  }
  p.theta = V_th - E_L;
  p.v_reset = V_reset - E_L;
  p.finish();
  EventpropNode::set_status( d );
  E_L_ = E_L;
  p_ = p;
  asc_init_ = asc_init;
  record_ = record;
  status_records_ = status_records;
  sc_rho_ = rho;
  sc_nu_ = nu;
  output_index_ = output_index;
  labels_ = labels;
  fs_xi_ = xi;
  fs_alpha_ = alpha;
  fs_beta_ = beta;
  fs_tau_s_ = tau_s;
}

void
eventprop_glif3_psc_ps::init_buffers_()
{
  clear_inbox_();
}

void
eventprop_glif3_psc_ps::pre_run_hook()
{
  schedule_.calibrate( get_name() );
}

void
eventprop_glif3_psc_ps::start_trial_( const long trial )
{
  trial_ = trial;
  s_.assign( p_.size(), 0.0 );
  std::copy( asc_init_.begin(), asc_init_.end(), s_.begin() + 1 );
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
eventprop_glif3_psc_ps::advance_( const double t )
{
  const double u = t - t_upd_;
  if ( u > 0.0 )
  {
    eventprop_glif3_propagate( s_, u, p_, refractory_ );
  }
  t_upd_ = t;
}

void
eventprop_glif3_psc_ps::predict_( const double t )
{
  const double T = schedule_.duration_ms;
  const double u = eventprop_glif3_first_crossing( s_, T - t, p_ );
  t_cross_ = ( u >= 0.0 and t + u < T ) ? t + u : -1.0;
}

void
eventprop_glif3_psc_ps::spike_( const double t, const long lag, const long within )
{
  const double step_end = ( within + 1 ) * schedule_.h;
  advance_( t );
  const size_t na = p_.n_asc();
  const double gdot = eventprop_glif3_dvdt( s_, p_ );
  const double no_release = std::numeric_limits< double >::quiet_NaN();
  std::vector< double > a_minus( s_.begin() + 1, s_.begin() + 1 + na );
  std::vector< double > a_plus( na );
  for ( size_t j = 0; j < na; ++j )
  {
    a_plus[ j ] = p_.asc_amps[ j ] + p_.rho[ j ] * a_minus[ j ];
  }
  tspk_.push_back(
    { t, gdot, 0.0, -1.0, no_release, a_minus, a_plus, {}, 0.0, 0.0, 0.0, within + 1, step_end - t } );
  s_[ 0 ] = p_.v_reset;
  std::copy( a_plus.begin(), a_plus.end(), s_.begin() + 1 );
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
    tspk_.back().vdot_plus = eventprop_glif3_dvdt( s_, p_ );
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
  send_spike_( lag, step_end - t );
}

void
eventprop_glif3_psc_ps::release_( const double t )
{
  advance_( t );
  refractory_ = false;
  t_release_ = -1.0;
  tspk_.back().release_vdot = eventprop_glif3_dvdt( s_, p_ );
  tspk_.back().release_asc.assign( s_.begin() + 1, s_.begin() + 1 + p_.n_asc() );
  if ( record_ )
  {
    rec_release_vdot_.back() = tspk_.back().release_vdot;
  }
  predict_( t );
}

void
eventprop_glif3_psc_ps::start_backward_()
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
  adj_.push_back( { schedule_.duration_ms, final_refractory_, std::vector< double >( p_.size(), 0.0 ) } );
}

void
eventprop_glif3_psc_ps::spike_time_loss_( const long trial )
{
  if ( output_index_ >= 0 )
  {
    if ( trial >= static_cast< long >( labels_.size() ) )
    {
      throw nest::KernelException( get_name() + " (output_index " + std::to_string( output_index_ )
        + "): no label for trial " + std::to_string( trial ) + "; labels has " + std::to_string( labels_.size() )
        + " entries." );
    }
    // z_j = -t_j / (xi tau_s); dL/dz_k = softmax(z)_k - [k = label], the sum in ascending order of z (independent of
    // the order of arrival); a missing spike counts as t = T and gets no gradient
    const double scale = fs_xi_ * fs_tau_s_;
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
        g += fs_alpha_ / ( fs_beta_ * fs_tau_s_ ) * std::exp( tspk_.front().t / ( fs_beta_ * fs_tau_s_ ) );
      }
      tspk_.front().G += g;
    }
  }
  if ( sc_rho_ > 0.0 )
  {
    // s = sum_k (1 - t_k / T); dL/dt_k = -rho (s - nu) / T for every spike
    const double T = schedule_.duration_ms;
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
eventprop_glif3_psc_ps::backward_step_( const long lag, const double s_end )
{
  const double T = schedule_.duration_ms;
  const size_t na = p_.n_asc();
  while ( bnext_ < bevents_.size() and T - std::get< 0 >( bevents_[ bnext_ ] ) <= s_end )
  {
    const auto [ t, kind, k ] = bevents_[ bnext_++ ];
    apply_pushes_( t );
    AdjointEntry e = adj_.back();
    const double u = e.t - t;
    if ( u > 0.0 )
    {
      eventprop_glif3_adjoint_propagate( e.lam, u, p_, e.refr );
    }
    e.t = t;
    TrialSpike& sp = tspk_[ k ];
    std::vector< double >& lam = e.lam;
    if ( kind == 1 )
    {
      double rr = -lam[ 0 ] * sp.release_vdot;
      for ( size_t j = 0; j < na; ++j )
      {
        rr += lam[ 1 + j ] * p_.asc_decay[ j ] * sp.release_asc[ j ];
      }
      sp.R = rr;
      lam[ 0 ] = 0.0;
      e.refr = true;  // going back, refractory until the spike
    }
    else
    {
      // J_k: the readouts' terms (pushed directly) plus the GLIF3 targets' accumulated adjoints
      for ( AdjointGroup& g : groups_ )
      {
        propagate_group_( g, t );
        sp.J += M_E / g.tau * ( g.sx / g.tau - g.si );
      }
      double b = sp.J + sp.R + sp.G - lam[ 0 ] * sp.vdot_plus;
      for ( size_t j = 0; j < na; ++j )
      {
        const double k_j = p_.asc_decay[ j ];
        const double adot_plus = p_.t_ref > 0.0 ? 0.0 : -k_j * sp.a_plus[ j ];
        b += lam[ 1 + j ] * ( -p_.rho[ j ] * k_j * sp.a_minus[ j ] - adot_plus );
      }
      lam[ 0 ] = -b / sp.gdot;
      for ( size_t j = 0; j < na; ++j )
      {
        lam[ 1 + j ] *= p_.rho[ j ];
      }
      e.refr = false;  // before the spike the neuron was free
    }
    const double lv = lam[ 0 ];
    adj_.push_back( std::move( e ) );
    if ( kind == 1 )
    {
      send_spike_( lag, -t );  // release message: lambda_v is 0 from here back to the spike
    }
    else
    {
      send_spike_( lag, sp.t );
      send_spike_( lag, lv );
    }
  }
}

void
eventprop_glif3_psc_ps::add_adjoint_push( const double t,
  const double dv,
  const double tau_m,
  const double tau_syn,
  const double C_m,
  const bool alpha )
{
  if ( not alpha )
  {
    throw nest::KernelException( get_name()
      + ": a reverse connection from a target with an exponential synaptic current (eventprop_iaf_psc_exp_ps); "
        "the spiking targets of this neuron must be eventprop_glif3_psc_ps." );
  }
  pushes_.push_back( { t, dv, tau_m, tau_syn, C_m } );
  std::push_heap( pushes_.begin(), pushes_.end(), push_later_first_ );
}

bool
eventprop_glif3_psc_ps::push_later_first_( const AdjointPush& x, const AdjointPush& y )
{
  // the largest forward time first; ties by value, independent of the order of arrival (threads, ranks)
  if ( x.t != y.t )
  {
    return x.t < y.t;
  }
  return x.dv < y.dv;
}

void
eventprop_glif3_psc_ps::propagate_group_( AdjointGroup& g, const double t )
{
  const double u = g.t - t;
  if ( u > 0.0 )
  {
    eventprop_glif3_port_adjoint( g.sx, g.si, g.sv, u, g.tau_m, g.tau, g.C_m, false );
    g.sv = g.sv * std::exp( -u / g.tau_m );
  }
  g.t = t;
}

void
eventprop_glif3_psc_ps::apply_pushes_( const double t )
{
  while ( not pushes_.empty() and pushes_.front().t > t )
  {
    std::pop_heap( pushes_.begin(), pushes_.end(), push_later_first_ );
    const AdjointPush p = pushes_.back();
    pushes_.pop_back();
    auto it = std::find_if( groups_.begin(),
      groups_.end(),
      [ &p ]( const AdjointGroup& g ) { return g.tau_m == p.tau_m and g.tau == p.tau and g.C_m == p.C_m; } );
    if ( it == groups_.end() )
    {
      groups_.push_back( { p.tau_m, p.tau, p.C_m, schedule_.duration_ms, 0.0, 0.0, 0.0 } );
      it = groups_.end() - 1;
    }
    propagate_group_( *it, p.t );
    it->sv += p.dv;
  }
}

std::vector< double >
eventprop_glif3_psc_ps::adjoint_at_( const double t ) const
{
  // the entry that follows t (smallest entry time > t): entries with time > t are a prefix of adj_
  const auto it =
    std::partition_point( adj_.begin(), adj_.end(), [ t ]( const AdjointEntry& e ) { return e.t > t; } );
  if ( it == adj_.begin() )
  {
    return std::vector< double >( p_.size(), 0.0 );  // t >= T
  }
  const AdjointEntry& e = *( it - 1 );
  std::vector< double > lam = e.lam;
  const double u = e.t - t;
  if ( u > 0.0 )
  {
    eventprop_glif3_adjoint_propagate( lam, u, p_, e.refr );
  }
  return lam;
}

double
eventprop_glif3_psc_ps::adjoint_current_at( const double ) const
{
  throw nest::KernelException( get_name()
    + " has alpha-shaped synaptic currents: the weight gradient is lambda_x e / tau_r of the arrival's port "
      "(weight_gradient_at), not lambda_I." );
}

double
eventprop_glif3_psc_ps::weight_gradient_at( const double t, const long rport ) const
{
  const size_t na = p_.n_asc();
  if ( rport < 1 or static_cast< size_t >( rport ) > p_.n_ports() )
  {
    throw nest::KernelException(
      get_name() + ": weight gradient on receptor port " + std::to_string( rport ) + ", not a port of the neuron." );
  }
  const size_t r = static_cast< size_t >( rport - 1 );
  const auto it =
    std::partition_point( adj_.begin(), adj_.end(), [ t ]( const AdjointEntry& e ) { return e.t > t; } );
  if ( it == adj_.begin() )
  {
    return 0.0;  // t >= T
  }
  const AdjointEntry& e = *( it - 1 );
  double lx = e.lam[ 1 + na + r ];
  double li = e.lam[ 1 + na + p_.n_ports() + r ];
  const double u = e.t - t;
  if ( u > 0.0 )
  {
    // only this port: the same doubles as the full propagation (and as the reverse connection's mirror)
    eventprop_glif3_port_adjoint( lx, li, e.lam[ 0 ], u, p_.tau_m, p_.tau_syn[ r ], p_.C_m, e.refr );
  }
  return lx * M_E / p_.tau_syn[ r ];
}

void
eventprop_glif3_psc_ps::update( nest::Time const& origin, const long from, const long to )
{
  const double h = schedule_.h;
  const double T = schedule_.duration_ms;
  const double inf = std::numeric_limits< double >::infinity();
  const size_t na = p_.n_asc();
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
      // the other outputs' first spike times: over eventprop_exchange_synapse, on port 0 (forward connections
      // between outputs deliver the same messages on their ports 1..R)
      for ( const EventpropArrival& arr : arrivals )
      {
        long arr_trial = 0;
        if ( arr.rport == 0 and schedule_.phase_of_stamp( arr.stamp, arr_trial ) == EventpropPhase::y_exchange
          and arr_trial == trial )
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
      final_refractory_ = refractory_;
      spike_time_loss_( trial );
      // constants for the mirrors of the reverse connections from this neuron: no loss coefficient, no maximum;
      // -R marks alpha currents, the ports' time constants follow
      send_spike_( lag, 0.0 );
      send_spike_( lag, std::numeric_limits< double >::quiet_NaN() );
      send_spike_( lag, 0.0 );
      send_spike_( lag, 0.0 );
      send_spike_( lag, p_.tau_m );
      send_spike_( lag, -static_cast< double >( p_.n_ports() ) );
      send_spike_( lag, p_.C_m );
      for ( const double tau : p_.tau_syn )
      {
        send_spike_( lag, tau );
      }
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
        const EventpropArrival& arr = arrivals[ next ];
        if ( arr.rport < 1 or arr.rport > static_cast< long >( p_.n_ports() ) )
        {
          ++next;  // not a forward spike (port 0: messages of the backward pass' connections)
          continue;
        }
        advance_( t_arr );
        const size_t r = static_cast< size_t >( arr.rport - 1 );
        s_[ 1 + na + r ] += arr.weight * M_E / p_.tau_syn[ r ];
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
