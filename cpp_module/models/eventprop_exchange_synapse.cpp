/*
 *  eventprop_exchange_synapse.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_exchange_synapse.h"

// NEST public headers
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_exchange_synapse( const std::string& name )
{
  nest::register_connection_model< eventprop_exchange_synapse >( name );
}

}  // namespace nestgrad
