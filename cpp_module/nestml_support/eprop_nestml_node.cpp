/*
 *  eprop_nestml_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_nestml_node.h"

#include "eprop_parameter_checks.h"

#include <algorithm>
#include <cmath>

// NEST public headers
#include "dict_util.h"
#include "event_delivery_manager_impl.h"
#include "kernel_manager.h"
#include "nest_names.h"

namespace nestgrad
{

EpropNestmlNode::EpropNestmlNode()
  : EpropEventNode()
  , c_reg_( 0.0 )
  , f_target_( 10.0 )
  , kappa_( 0.97 )
  , kappa_reg_( 0.97 )
  , surrogate_gradient_function_( "piecewise_linear" )
  , surrogate_gradient_height_( 0.3 )
  , surrogate_gradient_width_( 1.0 )
  , spiked_( false )
  , vector_registration_( false )
{
}

void
EpropNestmlNode::register_eprop_connection()
{
  if ( not vector_registration_ and needs_vector_synapse() )
  {
    throw nest::IllegalConnection( get_name() + ": its eligibility vector has " + std::to_string( eligibility_size() )
      + " components or it has several spike receptor ports; NEST's eprop_synapse keeps two components and no "
        "port. Connect it with eprop_vector_synapse." );
  }
  nest::EpropArchivingNodeRecurrent< false >::register_eprop_connection();
}

void
EpropNestmlNode::get_status( Dictionary& d ) const
{
  EpropEventNode::get_status( d );
  d[ nest::names::c_reg ] = c_reg_;
  d[ nest::names::f_target ] = f_target_;
  d[ nest::names::kappa ] = kappa_;
  d[ nest::names::kappa_reg ] = kappa_reg_;
  d[ nest::names::surrogate_gradient_function ] = surrogate_gradient_function_;
  d[ nest::names::surrogate_gradient_height ] = surrogate_gradient_height_;
  d[ nest::names::surrogate_gradient_width ] = surrogate_gradient_width_;
  d[ "eligibility_size" ] = static_cast< long >( eligibility_size() );
  // eprop_event_synapse: history held (entries of the largest port) and windows kept as summaries
  long held = static_cast< long >( get_event_history_size() );
  long summaries = get_event_window_summaries();
  long used = 0;
  for ( const auto& products : event_products_ )
  {
    held = std::max( held, products.entries_held() );
    summaries += products.summaries_held();
    used += products.summaries_used();
  }
  d[ "event_history_size" ] = held;
  d[ "event_window_summaries" ] = summaries;
  d[ "event_window_summaries_used" ] = used;  // running products only
  d[ "eprop_synapse_model" ] = std::string( needs_vector_synapse() ? "eprop_vector_synapse" : "eprop_synapse" );
}

void
EpropNestmlNode::set_status( const Dictionary& d )
{
  double c_reg = c_reg_;
  double f_target = f_target_;
  double kappa = kappa_;
  double kappa_reg = kappa_reg_;
  std::string surrogate = surrogate_gradient_function_;
  double height = surrogate_gradient_height_;
  double width = surrogate_gradient_width_;
  bool ignore_and_spike = false;
  nest::update_value_param( d, nest::names::c_reg, c_reg, this );
  nest::update_value_param( d, nest::names::f_target, f_target, this );
  nest::update_value_param( d, nest::names::kappa, kappa, this );
  nest::update_value_param( d, nest::names::kappa_reg, kappa_reg, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_function, surrogate, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_height, height, this );
  nest::update_value_param( d, nest::names::surrogate_gradient_width, width, this );
  nest::update_value_param( d, nest::names::ignore_and_spike, ignore_and_spike, this );

  check_eprop_parameters( c_reg, f_target, kappa, kappa_reg, height, width );
  if ( ignore_and_spike )
  {
    // the spike condition is the model's own (its onCondition block); forced spikes would bypass it
    throw nest::BadProperty( get_name() + ": ignore_and_spike is not supported by NESTML-generated e-prop neurons." );
  }
  surrogate_gradient_function function = nullptr;
  try
  {
    function = find_surrogate_gradient( surrogate );
  }
  catch ( const nest::BadProperty& )
  {
    throw nest::BadProperty( get_name() + ": surrogate_gradient_function = \"" + surrogate
      + "\" is unknown; known: arctan_derivative, exponential, fast_sigmoid_derivative, piecewise_linear." );
  }

  nest::EpropArchivingNodeRecurrent< false >::set_status( d );
  c_reg_ = c_reg;
  f_target_ = f_target;
  kappa_ = kappa;
  kappa_reg_ = kappa_reg;
  surrogate_gradient_function_ = surrogate;
  surrogate_gradient_height_ = height;
  surrogate_gradient_width_ = width;
  compute_surrogate_gradient_ = function;
}

void
EpropNestmlNode::eprop_pre_run_hook_()
{
  FlushEventMechanism::pre_run_hook();
}

size_t
EpropNestmlNode::handles_test_event( nest::LearningSignalConnectionEvent&, size_t receptor_type )
{
  if ( receptor_type != 0 )
  {
    throw nest::UnknownReceptorType( receptor_type, get_name() );
  }
  return 0;
}

void
EpropNestmlNode::handle( nest::LearningSignalConnectionEvent& e )
{
  for ( auto it_event = e.begin(); it_event != e.end(); )
  {
    const long time_step = e.get_stamp().get_steps();
    const double weight = e.get_weight();
    const double error_signal = e.get_coeffvalue( it_event );  // advances the iterator
    write_learning_signal_to_history( time_step, weight * error_signal );
    if ( not event_products_.empty() )
    {
      for ( auto& products : event_products_ )
      {
        products.add_learning_signal( time_step - 2, weight * error_signal );
      }
    }
    else if ( event_history_active_() )
    {
      add_event_learning_signal_( time_step - 2, weight * error_signal );  // the entry NEST's history uses
    }
  }
}

double
EpropNestmlNode::eprop_end_of_step_( const long t, const long lag, const double surrogate_gradient )
{
  double z = 0.0;
  if ( spiked_ )
  {
    z = 1.0;
    set_last_event_time( t );
  }
  else if ( flush_event_is_due( t ) )
  {
    nest::SpikeEvent se;
    se.set_flush_event_flag( true );
    nest::kernel().event_delivery_manager.send( *this, se, lag );
    set_last_event_time( t );
  }
  spiked_ = false;

  append_new_eprop_history_entry( t );
  write_surrogate_gradient_to_history( t, surrogate_gradient );
  // the archiving node expects the target rate in spikes per ms
  write_firing_rate_reg_to_history( t, z, f_target_ / 1000.0, kappa_reg_, c_reg_ );
  double learning_signal = get_learning_signal_from_history( t );

  if ( event_history_active_() )
  {
    if ( eprop_indegree_ == 0 )
    {
      // the archiving node updates the rate estimate only for eprop_synapse; same expression here
      const double dt = nest::Time::get_resolution().get_ms();
      f_av_ = kappa_reg_ * f_av_ + ( 1.0 - kappa_reg_ ) * z / dt;
      firing_rate_reg_ = c_reg_ * ( f_av_ - f_target_ / 1000.0 * dt );
    }
    if ( not event_products_.empty() )
    {
      const long keep = t - nest::kernel().connection_manager.get_min_delay() - 4;  // windows of spikes in transit
      // windows read at most the cutoff (none: -1)
      const long cutoff = event_cutoff_ < ( 1L << 40 ) ? event_cutoff_ : -1;
      double A[ EventProductHistory::max_states * EventProductHistory::max_states ];
      double h[ EventProductHistory::max_states ];
      double B[ EventProductHistory::max_states ];
      double hz = 0.0;
      for ( size_t port = 0; port < event_products_.size(); ++port )
      {
        EventProductHistory& products = event_products_[ port ];
        event_step_map_( port, t, surrogate_gradient, A, h );
        event_spike_input_( port, surrogate_gradient, B, hz );
        products.append( t, surrogate_gradient, A, h, B, hz, firing_rate_reg_, event_reg_factor_ );
        products.finalize_through( t - 2 );  // the learning signal of entry t - 2 has arrived
        products.prune( keep, cutoff );
      }
      if ( eprop_indegree_ == 0 and t - 2 >= 0 )
      {
        learning_signal = event_products_[ 0 ].learning_signal_or_zero( t - 2 );
      }
    }
    else
    {
      append_event_entry_( t, surrogate_gradient, firing_rate_reg_ );
      finalize_event_entries_( t - 2 );  // the learning signal of entry t - 2 has arrived
      prune_event_history_( t );
      if ( eprop_indegree_ == 0 and t - 2 >= 0 )
      {
        learning_signal = event_learning_signal_or_zero_( t - 2 );
      }
    }
  }
  return learning_signal;
}

std::string
EpropNestmlNode::event_synapse_refusal() const
{
  return eprop_event_unsupported_();
}

namespace
{
//! J = P diag(lambda) P^-1 for a triangular J of one or two states; false if its eigenvalues are equal and J is not
//! diagonal (a Jordan block: the trace is then not a sum of geometric sequences).
bool
diagonalize_port( EventPortRecursion& p )
{
  p.lambda[ 0 ] = p.J[ 0 ][ 0 ];
  p.P[ 0 ][ 0 ] = 1.0;
  p.P_inv[ 0 ][ 0 ] = 1.0;
  if ( p.n == 2 )
  {
    p.lambda[ 1 ] = p.J[ 1 ][ 1 ];
    p.P[ 1 ][ 1 ] = 1.0;
    p.P_inv[ 1 ][ 1 ] = 1.0;
    const double upper = p.J[ 0 ][ 1 ];
    const double lower = p.J[ 1 ][ 0 ];
    if ( upper != 0.0 or lower != 0.0 )
    {
      if ( p.lambda[ 0 ] == p.lambda[ 1 ] )
      {
        return false;
      }
      // eigenvectors (1, lower / (lambda_0 - lambda_1)) and (upper / (lambda_1 - lambda_0), 1); one of them is a unit
      // vector (J is triangular), so P^-1 only flips the sign of the off-diagonal entry
      p.P[ 1 ][ 0 ] = lower / ( p.lambda[ 0 ] - p.lambda[ 1 ] );
      p.P[ 0 ][ 1 ] = upper / ( p.lambda[ 1 ] - p.lambda[ 0 ] );
      p.P_inv[ 1 ][ 0 ] = -p.P[ 1 ][ 0 ];
      p.P_inv[ 0 ][ 1 ] = -p.P[ 0 ][ 1 ];
    }
  }
  for ( int m = 0; m < p.n; ++m )
  {
    p.g[ m ] = 0.0;
    p.w[ m ] = 0.0;
    for ( int i = 0; i < p.n; ++i )
    {
      p.g[ m ] += p.c[ i ] * p.P[ i ][ m ];
      p.w[ m ] += p.P_inv[ m ][ i ] * p.b[ i ];
    }
  }
  return true;
}
}  // namespace

void
EpropNestmlNode::eprop_event_pre_run_hook_()
{
  if ( not event_history_active_() )
  {
    return;
  }
  event_ports_.clear();
  const int n_ports = eprop_event_ports_( event_ports_ );
  if ( n_ports == 0 )
  {
    throw nest::KernelException( get_name() + ": eprop_event_synapse connected, but " + eprop_event_unsupported_() );
  }
  event_cutoff_ = get_eprop_isi_trace_cutoff();
  for ( auto& port : event_ports_ )
  {
    // the parts of the step map that do not change: e = psi (c . J) s + psi (c . b) z
    port.cb = 0.0;
    for ( int i = 0; i < port.n; ++i )
    {
      port.cb += port.c[ i ] * port.b[ i ];
      port.cJ[ i ] = 0.0;
      for ( int r = 0; r < port.n; ++r )
      {
        port.cJ[ i ] += port.c[ r ] * port.J[ r ][ i ];
      }
    }
  }
  // constant coefficients with geometric traces: the thread's store of running sums
  bool geometric = true;
  for ( auto& port : event_ports_ )
  {
    const bool constant =
      not port.time_varying and std::all_of( port.K, port.K + port.n, []( double k ) { return k == 0.0; } );
    const bool triangular = port.n == 1 or ( port.n == 2 and ( port.J[ 0 ][ 1 ] == 0.0 or port.J[ 1 ][ 0 ] == 0.0 ) );
    geometric = geometric and constant and triangular and diagonalize_port( port );
  }
  if ( not geometric )
  {
    configure_event_products_();
    return;
  }
  double distinct[ 3 ];
  int n_distinct = 0;
  for ( auto& port : event_ports_ )
  {
    for ( int m = 0; m < port.n; ++m )
    {
      const auto found = std::find( distinct, distinct + n_distinct, port.lambda[ m ] );
      if ( found == distinct + n_distinct )
      {
        if ( n_distinct == 3 )
        {
          throw nest::BadProperty( get_name() + ": eprop_event_synapse supports at most three distinct trace "
                                                "constants (time constants) per neuron." );
        }
        distinct[ n_distinct++ ] = port.lambda[ m ];
      }
      port.slot[ m ] = static_cast< int >( found - distinct );
    }
  }
  configure_event_history_( n_distinct, distinct, kappa_, kappa_reg_, c_reg_ > 0.0 );
  for ( auto& port : event_ports_ )
  {
    for ( int m = 0; m < port.n; ++m )
    {
      port.slot[ m ] = lambda_slot_( port.slot[ m ] );
    }
  }
}

void
EpropNestmlNode::configure_event_products_()
{
  const double kappas[ 2 ] = { kappa_, kappa_reg_ };
  const int n_filters = event_filters_( kappa_, kappa_reg_, c_reg_ > 0.0, event_reg_factor_ );
  if ( event_products_.size() != event_ports_.size() )
  {
    event_products_ = std::vector< EventProductHistory >( event_ports_.size() );
  }
  for ( size_t i = 0; i < event_ports_.size(); ++i )
  {
    const EventPortRecursion& port = event_ports_[ i ];
    const int d = port.n;
    if ( d < 1 or d > EventProductHistory::max_states )
    {
      throw nest::BadProperty( get_name() + ": eprop_event_synapse keeps running products of up to "
        + std::to_string( EventProductHistory::max_states ) + " eligibility states per port." );
    }
    double free[ EventProductHistory::max_states * EventProductHistory::max_states ];
    for ( int r = 0; r < d; ++r )
    {
      for ( int m = 0; m < d; ++m )
      {
        free[ r * d + m ] = port.J[ r ][ m ];
      }
    }
    event_products_[ i ].configure( d, free, n_filters, kappas, event_product_segment_shift_() );
  }
}

void
EpropNestmlNode::event_step_map_( const size_t port, long, const double psi, double* A, double* h ) const
{
  const EventPortRecursion& p = event_ports_[ port ];
  const int d = p.n;
  for ( int i = 0; i < d; ++i )
  {
    for ( int m = 0; m < d; ++m )
    {
      A[ i * d + m ] = p.J[ i ][ m ] + psi * p.K[ i ] * p.cJ[ m ];
    }
    h[ i ] = psi * p.cJ[ i ];
  }
}

void
EpropNestmlNode::event_spike_input_( const size_t port, const double psi, double* B, double& hz ) const
{
  const EventPortRecursion& p = event_ports_[ port ];
  hz = psi * p.cb;
  for ( int i = 0; i < p.n; ++i )
  {
    B[ i ] = p.b[ i ] + p.K[ i ] * hz;
  }
}

void
EpropNestmlNode::move_event_reader( const long t_spike_previous, const long t_spike, const size_t rport )
{
  const size_t port = event_port_index_( rport );
  if ( not event_products_.empty() and port < event_products_.size() )
  {
    event_products_[ port ].move_reader( t_spike_previous > 0 ? t_spike_previous - 1 : -1, t_spike - 1 );
  }
  else if ( event_products_.empty() )
  {
    EpropEventNode::move_event_reader( t_spike_previous, t_spike, rport );
  }
}

double
EpropNestmlNode::event_product_gradient_( const long t_spike,
  const long t_spike_previous,
  const size_t rport,
  EventEpropTrace& trace )
{
  // As the step loop of compute_gradient_vector(): entry a with the previous spike if it is still pending, entry
  // a + 1 with the new spike, then the running products from a + 2 on; beyond the cutoff the state decays with the
  // free step map.
  EventProductHistory& products = event_products_[ rport ];
  const long a = t_spike_previous - 1;
  const long stop = t_spike - 1;
  const long end = event_window_end_( t_spike, t_spike_previous );
  products.finalize_through( end - 1 );

  const double kr = eprop_kappa_reg_();
  const bool separate_reg = products.n_filters() == 2;
  double ebar[ 2 ] = { trace.e_bar, separate_reg ? trace.e_bar_reg / ( 1.0 - kr ) : 0.0 };
  double g[ 2 ] = { 0.0, 0.0 };
  double x[ EventProductHistory::max_states ];
  std::copy( trace.y, trace.y + EventProductHistory::max_states, x );
  products.spike_window( a, end, trace.pending, x, ebar, g );
  const bool spike_entered = a + 1 < end;
  const double gradient = g[ 0 ] + ( separate_reg ? ( 1.0 - kr ) * g[ 1 ] : 0.0 );

  // to one step before the next window start; a spike that has not entered yet enters the next window's first step
  products.decay( stop - end, x );
  std::copy( x, x + EventProductHistory::max_states, trace.y );
  trace.pending = not spike_entered;
  const double decay = static_cast< double >( stop - end );
  trace.e_bar = ebar[ 0 ] * std::pow( eprop_kappa_(), decay );
  trace.e_bar_reg = ( 1.0 - kr ) * ( separate_reg ? ebar[ 1 ] * std::pow( kr, decay ) : trace.e_bar );
  return gradient;
}

double
EpropNestmlNode::event_gradient( const long t_spike,
  const long t_spike_previous,
  double,
  const size_t rport,
  EventEpropTrace& trace )
{
  // The synapse holds eps at a - 1, one step before the window start a, and whether its previous spike enters at a
  // (pending). Entry a: y = J eps + b pending, e = psi (c . y). From a + 1 on, with the new spike entering at a + 1:
  // eps[t] = J^(t-a) eps[a] + J^(t-a-1) b, so c . eps[t] = sum_m g_m (u_m + w_m / lambda_m) lambda_m^(t-a) with
  // u = P^-1 eps[a] (EventPortRecursion).
  const size_t port = event_port_index_( rport );
  if ( port >= event_ports_.size() )
  {
    throw nest::UnknownReceptorType( rport, get_name() );
  }
  if ( not event_products_.empty() )
  {
    return event_product_gradient_( t_spike, t_spike_previous, port, trace );
  }
  const EventPortRecursion& p = event_ports_[ port ];
  const long a = t_spike_previous - 1;
  const long stop = t_spike - 1;
  const long end = event_window_end_( t_spike, t_spike_previous );
  finalize_event_entries_( end - 1 );

  const int n = p.n;
  double eps_a[ 2 ] = { 0.0, 0.0 };
  double x_a = 0.0;
  for ( int i = 0; i < n; ++i )
  {
    for ( int j = 0; j < n; ++j )
    {
      eps_a[ i ] += p.J[ i ][ j ] * trace.y[ j ];
    }
    eps_a[ i ] += trace.pending ? p.b[ i ] : 0.0;
    x_a += p.c[ i ] * eps_a[ i ];
  }
  const double kr = eprop_kappa_reg_();
  double ebar[ 2 ];
  double g[ 2 ];
  event_first_entry_( a, x_a, eprop_kappa_(), kr, trace, ebar, g );

  double coefficient[ 2 ] = { 0.0, 0.0 };  // eps[t] = P (lambda^(t-a) * coefficient) for t > a
  double Y[ 3 ] = { 0.0, 0.0, 0.0 };
  for ( int m = 0; m < n; ++m )
  {
    double u = 0.0;
    for ( int j = 0; j < n; ++j )
    {
      u += p.P_inv[ m ][ j ] * eps_a[ j ];
    }
    coefficient[ m ] = u + p.w[ m ] / p.lambda[ m ];
    Y[ p.slot[ m ] ] += p.g[ m ] * coefficient[ m ];
  }
  event_window_( a + 1, end, ebar, Y, a, g );

  // carry the state to the next window start (stop): traces decay, filtered traces decay beyond the cutoff
  const long steps = stop - 1 - a;  // to one step before the next window start
  if ( steps == 0 )
  {
    trace.y[ 0 ] = eps_a[ 0 ];
    trace.y[ 1 ] = eps_a[ 1 ];
    trace.pending = true;  // the new spike enters at the next window's first step
  }
  else
  {
    double decayed[ 2 ];
    for ( int m = 0; m < n; ++m )
    {
      decayed[ m ] = coefficient[ m ] * lambda_power_( p.slot[ m ], steps );
    }
    for ( int i = 0; i < n; ++i )
    {
      trace.y[ i ] = 0.0;
      for ( int m = 0; m < n; ++m )
      {
        trace.y[ i ] += p.P[ i ][ m ] * decayed[ m ];
      }
    }
    trace.pending = false;
  }
  return event_finish_( stop, end, kr, ebar, g, trace );
}

}  // namespace nestgrad
