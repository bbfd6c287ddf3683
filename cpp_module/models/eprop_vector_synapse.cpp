/*
 *  eprop_vector_synapse.cpp
 *
 *  This file is part of nestgrad.
 */

#include "eprop_vector_synapse.h"

// NEST public headers
#include "nest_impl.h"

namespace nestgrad
{

void
register_eprop_vector_synapse( const std::string& name )
{
  nest::register_connection_model< eprop_vector_synapse >( name );
}

}  // namespace nestgrad
