/*
 *  eprop_nestml_node.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_nestml_node.h"

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
  , eprop_()
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
  eprop_.get( d );
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
  EpropParameters eprop = eprop_;  // a copy: an invalid value leaves the neuron unchanged
  eprop.set( d, this );
  bool ignore_and_spike = false;
  nest::update_value_param( d, nest::names::ignore_and_spike, ignore_and_spike, this );
  if ( ignore_and_spike )
  {
    // the spike condition is the model's own (its onCondition block); forced spikes would bypass it
    throw nest::BadProperty( get_name() + ": ignore_and_spike is not supported by NESTML-generated e-prop neurons." );
  }
  const surrogate_gradient_function function = select_surrogate_gradient_( eprop.surrogate_gradient_function_ );

  nest::EpropArchivingNodeRecurrent< false >::set_status( d );
  eprop_ = eprop;
  compute_surrogate_gradient_ = function;
}

void
EpropNestmlNode::eprop_pre_run_hook_()
{
  FlushEventMechanism::pre_run_hook();
}

void
EpropNestmlNode::store_event_learning_signal_( const long t, const double learning_signal )
{
  if ( event_products_.empty() )
  {
    EpropEventNode::store_event_learning_signal_( t, learning_signal );
    return;
  }
  for ( auto& products : event_products_ )
  {
    products.add_learning_signal( t, learning_signal );
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
  else
  {
    send_flush_event_if_due_( t, lag );
  }
  spiked_ = false;
  return eprop_history_step_( t, z, surrogate_gradient, eprop_.f_target_, eprop_.kappa_reg_, eprop_.c_reg_ );
}

double
EpropNestmlNode::append_event_step_( const long t, const double surrogate_gradient, const double learning_signal )
{
  if ( event_products_.empty() )
  {
    return EpropEventNode::append_event_step_( t, surrogate_gradient, learning_signal );
  }
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
    return event_products_[ 0 ].learning_signal_or_zero( t - 2 );
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
  configure_event_history_( n_distinct, distinct, eprop_.kappa_, eprop_.kappa_reg_, eprop_.c_reg_ > 0.0 );
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
  const double kappas[ 2 ] = { eprop_.kappa_, eprop_.kappa_reg_ };
  const int n_filters = event_filters_( eprop_.kappa_, eprop_.kappa_reg_, eprop_.c_reg_ > 0.0, event_reg_factor_ );
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
