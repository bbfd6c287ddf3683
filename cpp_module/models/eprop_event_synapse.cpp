/*
 *  eprop_event_synapse.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_event_synapse.h"

// NEST public headers
#include "nest_impl.h"

namespace nestgrad
{

void
register_eprop_event_synapse( const std::string& name )
{
  nest::register_connection_model< eprop_event_synapse >( name );
}

}  // namespace nestgrad
