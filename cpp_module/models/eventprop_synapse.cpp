/*
 *  eventprop_synapse.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_synapse.h"

// NEST public headers
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_synapse( const std::string& name )
{
  nest::register_connection_model< eventprop_synapse >( name );
}

}  // namespace nestgrad
