/*
 *  eventprop_reverse_synapse.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eventprop_reverse_synapse.h"

// NEST public headers
#include "nest_impl.h"

namespace nestgrad
{

void
register_eventprop_reverse_synapse( const std::string& name )
{
  nest::register_connection_model< eventprop_reverse_synapse >( name );
}

}  // namespace nestgrad
